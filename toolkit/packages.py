"""The Debian packages the end-to-end suites install, all listed here and installed only here.

Each outside program a suite or helper runs is a *part*: its packages and the files that show
they are installed. ``SUITES`` names the parts each suite needs; tests/e2e/conftest.py installs
them before the suite's first test. Helpers that run a program call :func:`need` as well, so
they work whatever ran before them (a suite alone, in any order, or bench/).

``python -m toolkit.packages`` prints the packages a new machine lacks, one a line:
the suites' own, and what installs here brought in with them (INSTALLED_LOG). That is what
``.ci/run`` purges before it starts from nothing (it runs before any venv exists, so this
module needs the standard library only).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from toolkit import ToolkitError


@dataclass(frozen=True)
class Part:
    """Debian packages, and the files (glob patterns) that are all there once they are."""

    packages: tuple[str, ...]
    files: tuple[str, ...]

    def installed(self) -> bool:
        return all(glob.glob(pattern) for pattern in self.files)


PARTS: dict[str, Part] = {
    # Root filesystems for stand-in images and booted machines (debian.py).
    "mmdebstrap": Part(("mmdebstrap",), ("/usr/bin/mmdebstrap",)),
    # A booted systemd: machines.py.
    "nspawn": Part(("systemd-container",), ("/usr/bin/systemd-nspawn",)),
    "podman": Part(
        ("podman", "buildah", "runc", "netavark", "aardvark-dns", "iptables", "uidmap"),
        (
            "/usr/bin/podman",
            "/usr/bin/buildah",
            "/usr/sbin/runc",
            "/usr/lib/podman/netavark",
            "/usr/lib/podman/aardvark-dns",
            "/usr/sbin/iptables",
            "/usr/bin/newuidmap",
        ),
    ),  # fmt: skip
    # Docker Engine with a dockerd of the suites' own, and a registry: docker.py.
    "docker": Part(
        ("docker.io", "docker-registry", "iptables"),
        ("/usr/bin/docker", "/usr/sbin/dockerd", "/usr/bin/docker-registry", "/usr/sbin/iptables"),
    ),
    "nginx": Part(("nginx",), ("/usr/sbin/nginx",)),
    "postgresql": Part(("postgresql",), ("/usr/lib/postgresql/*/bin/initdb",)),
    "chromium": Part(("chromium",), ("/usr/bin/chromium",)),
    # NSS's certutil: a Chromium profile's home that trusts a test CA (lighthouse.py).
    "certutil": Part(("libnss3-tools",), ("/usr/bin/certutil",)),
    "wrk": Part(("wrk",), ("/usr/bin/wrk",)),
    "curl": Part(("curl",), ("/usr/bin/curl",)),
    # A web vulnerability scanner, run against a seeded site: test_scanner.py.
    "wapiti": Part(("wapiti",), ("/usr/bin/wapiti",)),
    # A certificate authority of the suites' own: tls.py.
    "openssl": Part(("openssl",), ("/usr/bin/openssl",)),
    # testssl.sh (3.0.8 on Debian 12), run against the host suite's https site: tls.py.
    "testssl": Part(("testssl.sh",), ("/usr/bin/testssl",)),
}

#: Parts whose packages a new machine of this project comes with (Debian 12 with PostgreSQL
#: 15 and curl): ``.ci/run`` leaves them, since a new machine has them too.
ON_A_NEW_MACHINE = ("postgresql", "curl", "openssl")

#: What each suite in tests/e2e/ installs before its first test, by part.
SUITES: dict[str, tuple[str, ...]] = {
    "test_accounts_browser": ("chromium", "openssl", "postgresql"),
    "test_backup": ("postgresql",),
    "test_bench_smoke": ("wrk",),
    "test_browser": ("chromium",),
    "test_compose": ("docker", "mmdebstrap"),
    "test_container": ("podman", "docker", "mmdebstrap"),
    "test_docker_systemd": ("docker", "mmdebstrap", "nspawn"),
    "test_faults": (),
    "test_gunicorn": (),
    "test_host": ("mmdebstrap", "nspawn", "curl", "openssl", "testssl"),
    "test_hostile": (),
    "test_lighthouse": ("chromium", "certutil", "nginx", "openssl"),
    "test_lockout": (),
    "test_mail": ("openssl",),
    "test_manifests": ("nginx", "curl", "openssl"),
    "test_micro_cache": ("nginx",),
    "test_package": (),
    "test_passkeys": ("chromium", "postgresql"),
    "test_postgres": ("postgresql",),
    "test_pythons": ("podman", "mmdebstrap"),
    "test_scale_out": ("nginx", "postgresql"),
    "test_scanner": ("wapiti",),
}


#: Every package an install here brought in, the packages' dependencies too: .ci/run purges
#: them all, since apt's autoremove keeps a dependency that any installed package recommends.
INSTALLED_LOG = Path("/var/lib/flaskr-e2e/installed-packages")


class PackageError(ToolkitError):
    """A part could not be installed."""


def need(*parts: str) -> None:
    """Install, as root, the packages of every part in ``parts`` that is not all there."""
    missing = [p for p in parts if not PARTS[p].installed()]
    if not missing:
        return
    packages = sorted({pkg for p in missing for pkg in PARTS[p].packages})
    if os.geteuid() != 0:
        raise PackageError(f"need root to install {' '.join(packages)} (or install them first)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Wait for another apt run (unattended-upgrades) instead of failing; two of ours (the
    # root filesystem maker and a suite) take turns, since `apt-get update` would not wait.
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    with _our_apt_lock():
        before = installed()
        for command in (
            ["apt-get", "update", "-q", *lock],
            ["apt-get", "install", "-y", "-q", *lock, "--no-install-recommends", *packages],
        ):
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise PackageError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr}")
        with INSTALLED_LOG.open("a") as log:
            log.writelines(f"{name}\n" for name in sorted(installed() - before))
    still = [p for p in missing if not PARTS[p].installed()]
    if still:
        raise PackageError(f"installed {' '.join(packages)}, yet {still} still lack files")


def installed() -> set[str]:
    """The names of the Debian packages installed now."""
    listing = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package}\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.split()[1] for line in listing.splitlines() if line.startswith("ii")}


@contextlib.contextmanager
def _our_apt_lock() -> Iterator[None]:
    INSTALLED_LOG.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # root's only
    with open(INSTALLED_LOG.parent / "apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def not_on_a_new_machine() -> list[str]:
    """Every package a suite installs that a new machine does not come with."""
    kept = {pkg for p in ON_A_NEW_MACHINE for pkg in PARTS[p].packages}
    return sorted({pkg for part in PARTS.values() for pkg in part.packages} - kept)


def to_purge(log: Path = INSTALLED_LOG) -> list[str]:
    """What .ci/run purges: the suites' own packages and whatever installs here brought in."""
    logged = log.read_text().split() if log.exists() else []
    return sorted({*not_on_a_new_machine(), *logged})


if __name__ == "__main__":
    sys.stdout.write("".join(f"{pkg}\n" for pkg in to_purge()))
