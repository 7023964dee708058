"""Debian root filesystems made by mmdebstrap, what the stand-in images and the booted test
machines are made of, from the mirror this machine's apt uses (a user behind a local mirror
gets theirs). Only released suites: nothing built here may change from one day to the next
but for the point releases and security fixes those suites get.

Each root filesystem is a tarball in the suites' cache, keyed by its suite, mirror and
packages, made once per cache: ``FLASKR_E2E_CACHE`` (default /var/tmp/flaskr-e2e-cache) holds
them, with the podman and Docker stores and the wheels. ``.ci/run`` points it at an empty folder
for every CI run, so CI never reuses what an earlier run made.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import hashlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from toolkit import ToolkitError
from toolkit.packages import need

#: Everything the suites keep between runs, in one folder.
CACHE = Path(os.environ.get("FLASKR_E2E_CACHE", "/var/tmp/flaskr-e2e-cache"))  # noqa: S108

#: The root filesystems the suites use, by name: a suite and its packages, in the order the
#: suites first need them.
#: python-*: stand-ins for the Dockerfile's python image (what it has that the Dockerfile uses,
#: and the CA store pip needs). machine: a bare Debian server plus what install-host would
#: install (nginx, python3-venv; the machine has no network), certbot as docs/deploy-host.md
#: has a user install it, pebble, openssl and curl for the https tests, and PostgreSQL for the
#: guides' PostgreSQL recipes (a server in the machine, on its loopback). docker-machine: a
#: server with Docker Engine and no Python. services: the compose file's PostgreSQL 17 and
#: nginx, with envsubst and wget as the official images have them.
ROOTFS: dict[str, tuple[str, str]] = {
    "python-bookworm": ("bookworm", "python3 python3-venv python3-pip python-is-python3 procps"),
    "services": ("trixie", "postgresql-17 nginx gettext-base wget"),
    "docker-machine": ("bookworm", "systemd systemd-sysv dbus procps docker.io iptables"),
    "machine": (
        "bookworm",
        "systemd systemd-sysv dbus python3 python3-venv nginx procps"
        " certbot python3-certbot-nginx pebble openssl curl postgresql",
    ),
    "python-trixie": (
        "trixie",
        "python3 python3-venv python3-pip python-is-python3 procps ca-certificates",
    ),
}


class MirrorError(ToolkitError):
    pass


def codename(os_release: Path = Path("/etc/os-release")) -> str:
    """This machine's Debian release name (bookworm on Debian 12)."""
    found = re.search(r"^VERSION_CODENAME=\"?([a-z]+)", os_release.read_text(), re.M)
    if not found:
        raise MirrorError(f"no VERSION_CODENAME in {os_release}")
    return found.group(1)


def apt_sources(etc_apt: Path = Path("/etc/apt")) -> Iterator[tuple[str, list[str]]]:
    """(URI, suites) of every enabled ``deb`` source, in apt's order: sources.list, then
    sources.list.d/*.list and *.sources (deb822) by name."""
    files = [etc_apt / "sources.list"] + sorted(
        p for p in (etc_apt / "sources.list.d").glob("*") if p.suffix in (".list", ".sources")
    )
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[0].isspace():
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if "deb" not in fields.get("types", "").split():
                    continue
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                for uri in fields.get("uris", "").split():
                    yield uri, fields.get("suites", "").split()
        else:
            for line in text.splitlines():
                line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(line) >= 3 and line[0] == "deb":
                    yield line[1], [line[2]]


def mirror(etc_apt: Path = Path("/etc/apt"), os_release: Path = Path("/etc/os-release")) -> str:
    """The Debian mirror apt uses for this machine's own release (not its security archive),
    or FLASKR_E2E_DEBIAN_MIRROR."""
    chosen = os.environ.get("FLASKR_E2E_DEBIAN_MIRROR")
    if chosen:
        return chosen
    release = codename(os_release)
    for uri, suites in apt_sources(etc_apt):
        if release in suites:
            return uri.rstrip("/")
    raise MirrorError(
        f"no apt source in {etc_apt} serves {release}; set FLASKR_E2E_DEBIAN_MIRROR to the "
        "Debian mirror to build root filesystems from"
    )


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path``: one maker at a time of what it guards, across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def rootfs(name: str) -> Path:
    """The root filesystem ``name`` of ROOTFS as a tarball, made by mmdebstrap the first time
    (slow: it downloads and unpacks every package). Different ones may be made at once."""
    suite, names = ROOTFS[name]
    packages = names.split()
    source = mirror()
    key = hashlib.sha256(" ".join([suite, source, *packages]).encode()).hexdigest()[:12]
    tarball = CACHE / "rootfs" / f"{name}-{suite}-{key}.tar"
    with locked(tarball.with_suffix(".lock")):
        if not tarball.exists():
            need("mmdebstrap")
            partial = tarball.with_suffix(".partial.tar")
            partial.unlink(missing_ok=True)  # what an interrupted run left
            done = subprocess.run(  # noqa: S603
                [
                    "mmdebstrap",
                    "--quiet",
                    "--variant=minbase",
                    f"--include={','.join(packages)}",
                    suite,
                    str(partial),
                    source,
                ],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            if done.returncode != 0:
                partial.unlink(missing_ok=True)
                raise RuntimeError(
                    f"mmdebstrap {suite} ({name}) from {source} exited {done.returncode}:\n"
                    f"{done.stderr[-3000:]}"
                )
            partial.rename(tarball)
    return tarball


def main(argv: list[str]) -> int:
    """Make root filesystems ahead of the suites that use them (scripts/test starts this in
    the background while the unit tests run): every one of ROOTFS, or those named."""
    names = argv or list(ROOTFS)
    need("mmdebstrap")  # once, before the makers start
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for name, made in zip(names, pool.map(_made_in, names), strict=True):
            failed += made is None
            print(f"root filesystem {name}: {made or 'FAILED'}", flush=True)
    return 1 if failed else 0


def _made_in(name: str) -> str | None:
    started = time.monotonic()
    try:
        tarball = rootfs(name)
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        print(f"root filesystem {name}: {error}", file=sys.stderr, flush=True)
        return None
    return f"{tarball} ({time.monotonic() - started:.0f} s)"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
