"""The host path: scripts/install-host takes a bare Debian 12 with a real systemd
to flaskr under systemd behind nginx, and the result survives reloads, kills, re-installs,
upgrades and reboots without losing a request or a post. Then https as docs/deploy-host.md
sets it up: certbot --nginx against pebble (a real ACME server, in the machine), upgrades and
renewals under load, and install-host --tls-cert with a certificate of the suite's own CA.

The machine is systemd-nspawn on an mmdebstrap root filesystem (see host_machine.py), with a
private network: nginx listens on the machine's own loopback only, and the HTTP clients
(host_client.py) run in its network namespace. The checkout is bound read-only into the
machine and install-host runs there as root, as a user would run it with sudo; the machine
has no network, so pip installs from a wheelhouse built on the host (``--wheels``).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import pytest

from flaskr.isolation import formatting
from toolkit import ROOT
from toolkit.debian import rootfs
from toolkit.isolation_reports import is_gunicorn, isolation_out, save_report
from toolkit.machines import Machine, copy_checkout, wheelhouse
from toolkit.recipes import recipe
from toolkit.tls import PEBBLE_DIR, issue, make_ca, start_ocsp_responder, start_pebble
from toolkit.wait import until

SRC = "/srv/src"
INSTALL = [f"{SRC}/flaskr/scripts/install-host", "--wheels", "/srv/wheels"]
SOCKET = "/run/flaskr/flaskr.sock"
MAX_EXPOSURE = 0.5  # measured 0.3 on Debian 12's systemd 252; docs/deploy-host.md quotes it
#: What install-host owns on the machine: a re-run must leave every one of these untouched.
INSTALLED = (
    "/opt/flaskr /etc/flaskr /etc/systemd/system/flaskr.service /etc/nginx"
    " /etc/systemd/system/flaskr-backup.service /etc/systemd/system/flaskr-backup.timer"
)


@dataclass
class Host:
    machine: Machine
    first_install: subprocess.CompletedProcess[str] | None
    src: Path


@pytest.fixture(scope="module")
def booted(request: pytest.FixtureRequest) -> Iterator[Host]:
    """The bare server, booted: nothing of flaskr's installed yet."""
    if os.geteuid() != 0:
        pytest.fail("the host suite boots a machine with systemd-nspawn: run it as root")
    name = f"flaskr-host-test-{uuid.uuid4().hex[:8]}"
    work = Path("/var/tmp") / name  # noqa: S108 - a unique folder, removed at the end
    src = work / "src"
    wheels = wheelhouse(ROOT / "requirements.txt")
    machine = Machine(name, work / "rootfs", {src: SRC, wheels: "/srv/wheels"}, work / "log")

    def cleanup() -> None:
        machine.kill()
        shutil.rmtree(work, ignore_errors=True)
        atexit.unregister(cleanup)

    def on_sigterm(*_: object) -> None:
        raise KeyboardInterrupt  # pytest stops the session; atexit then cleans up

    # pytest skips fixture teardown on Ctrl-C, and SIGTERM (a cancelled CI job) skips everything:
    # atexit and a SIGTERM handler make sure the machine and its folder go in every case.
    request.addfinalizer(cleanup)
    atexit.register(cleanup)
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    request.addfinalizer(lambda: signal.signal(signal.SIGTERM, previous))
    work.mkdir()
    machine.rootfs.mkdir()
    tarball = rootfs("machine")
    subprocess.run(["tar", "-C", str(machine.rootfs), "-xf", str(tarball)], check=True, timeout=300)
    (machine.rootfs / "etc/hostname").write_text(name + "\n")
    copy_checkout(src / "flaskr")
    machine.boot()
    yield Host(machine, None, src)


@pytest.fixture(scope="module")
def host(booted: Host) -> Host:
    """The server with flaskr installed by the guide's first recipe (its test, first in the
    file, installs it; when ``-k`` leaves that test out, it is run here)."""
    if booted.first_install is None:
        test_deploy_host_from_a_fresh_server_to_https(booted)
    return booted


@pytest.fixture(scope="module")
def post(host: Host) -> dict[str, object]:
    """A person's post with an image, made through nginx once and checked again later."""
    return host.machine.client("flow", f"Hello-from-the-host-{uuid.uuid4().hex[:6]}")


def snapshot(machine: Machine) -> str:
    """Path, size, mode, owner and modification time of everything install-host installs."""
    return machine.sh(f"find {INSTALLED} -printf '%p %s %m %u:%g %T@ %l\\n' | sort")


def flaskr_pids(machine: Machine) -> tuple[int, set[int]]:
    main = int(machine.show("flaskr", "MainPID")["MainPID"])
    return main, machine.children(main)


def nginx_pids(machine: Machine) -> tuple[int, set[int]]:
    main = int(machine.show("nginx", "MainPID")["MainPID"])
    return main, machine.children(main)


def wait_workers_replaced(machine: Machine, main: int, old: set[int]) -> int:
    """After `systemctl reload`: a new master, systemd's main process now, with three new
    workers; the old master and every old worker gone (they finish their requests first).
    Returns the new master."""

    def replaced() -> int | None:
        new_main, new = flaskr_pids(machine)
        if new_main == main or len(new) != 3 or new & old:
            return None
        left = machine.sh(
            f"ls -d /proc/{' /proc/'.join(map(str, {main, *old}))} 2>/dev/null || true"
        )
        return new_main if not left else None

    return until(replaced, 60, f"the master {main} and workers {old} to be replaced", step=0.1)


def exposure(output: str) -> float:
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", output)
    assert match, output[-2000:]
    return float(match.group(1))


def test_deploy_host_from_a_fresh_server_to_https(booted: Host) -> None:
    """docs/deploy-host.md's step 2 without git: `git archive` of a checkout (on the CI host,
    in a git repository made from a copy of this checkout's files), copied to the server (cp
    into its file system for scp), unpacked and installed there, on a bare Debian."""
    m = booted.machine
    archive = m.rootfs.parent / "archive"
    copy_checkout(archive)
    git = "git -c user.name=suite -c user.email=suite@flaskr.test"
    subprocess.run(
        ["sh", "-c", f"git init -q && {git} add -A && {git} commit -qm checkout"],
        cwd=archive, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    lines = recipe(
        "docs/deploy-host.md",
        "From a fresh server to https",
        0,
        replace={
            "scp flaskr.tar.gz blog.example.org:": f"cp flaskr.tar.gz {m.rootfs}/root/",
            '"blog.example.org"': f'"localhost {m.name}"',  # the names the other tests use
            "sudo ": "",
        },
    )
    subprocess.run(["sh", "-c", "set -e\n" + "\n".join(lines[:2])], cwd=archive, check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    started = time.monotonic()
    booted.first_install = first = m.recipe(lines[2:], "/root", timeout=600)
    print(f"\nfirst install-host: {time.monotonic() - started:.1f}s\n{first.stdout}")
    out = first.stdout
    for step in (
        "system packages present",
        "creating system user flaskr",
        "generating the secret key",
        "installing requirements.txt",
        "Initialized the database.",
        "starting flaskr",
    ):
        assert step in out, f"{step!r} not in:\n{out}"
    assert m.sh("stat -c '%a %U:%G' /etc/flaskr/secret_key") == "600 root:root"
    assert m.sh("stat -c '%a %U' /etc/flaskr") == "700 root"
    assert m.sh("id -un flaskr; id -gn flaskr") == "flaskr\nflaskr"
    for unit in ("flaskr", "nginx"):
        assert m.run(["systemctl", "is-enabled", unit]).stdout.strip() == "enabled"
        assert m.run(["systemctl", "is-active", unit]).stdout.strip() == "active"
    # The app user may not read the key; only the service gets it, as a credential.
    peek = m.run(["runuser", "-u", "flaskr", "--", "cat", "/etc/flaskr/secret_key"], check=False)
    assert peek.returncode != 0 and "Permission denied" in peek.stderr
    assert m.sh("stat -c '%U:%G %a' /var/lib/flaskr /var/lib/flaskr/flaskr.sqlite") == (
        "flaskr:www-data 700\nflaskr:www-data 600"
    )


def test_install_host_refuses_what_it_cannot_do(host: Host) -> None:
    done = host.machine.run(["runuser", "-u", "nobody", "--", *INSTALL], check=False)
    assert done.returncode != 0
    assert "run me as root" in done.stderr
    done = host.machine.run([*INSTALL, "--wheels", "/nonexistent"], check=False)
    assert done.returncode != 0 and "no such folder" in done.stderr
    # Options it cannot make sense of, refused in its own words before anything changes
    # (each costs ~0.1 s): no value, contradictions, names that are no host names, a number
    # that is none.
    before = snapshot(host.machine)
    refusals = {
        ("--wheels",): "install-host: error: --wheels needs a folder.",
        ("--server-name",): "install-host: error: --server-name needs names",
        ("--micro-cache", "--no-micro-cache"): "--micro-cache and --no-micro-cache contradict",
        ("--server-name", "-x"): "install-host: error: server name '-x': not a host name",
        ("--server-name", "blog.example.org a..b"): "server name 'a..b': not a host name",
        ("FLASKR_HEALTH_SECONDS=abc",): "FLASKR_HEALTH_SECONDS='abc': a whole number of seconds",
    }
    for args, said in refusals.items():
        env = [a for a in args if a.startswith("FLASKR_")]
        options = [a for a in args if not a.startswith("FLASKR_")]
        done = host.machine.run(["env", *env, *INSTALL, *options], check=False)
        assert done.returncode == 1 and said in done.stderr, (args, done)
        assert "Traceback" not in done.stderr and not re.search(r"line \d+", done.stderr), done
    assert snapshot(host.machine) == before


def test_a_persons_whole_flow_through_nginx(host: Host, post: dict[str, object]) -> None:
    m = host.machine
    assert isinstance(post["post_id"], int)
    # Static files come from nginx itself (its expires header), not from gunicorn.
    css = m.client("get", "/static/style.css")
    assert css["status"] == 200 and css["headers"]["cache-control"] == "max-age=3600"
    assert css["headers"]["content-type"] == "text/css"
    # The host's own name is served too (install-host's default server_name)...
    assert m.client("get", "/healthz", m.name)["status"] == 200
    # ...an unknown Host gets its connection closed without an answer (444).
    assert m.client("get", "/healthz", "evil.example") == {"error": "RemoteDisconnected"}
    # nginx's upload limit is the app's: one byte more is refused by nginx, not by a worker.
    limit = int(
        m.sh(
            "cd /opt/flaskr/app && FLASKR_INSTANCE_PATH=/tmp/limit /opt/flaskr/venv/bin/python -c "
            "'from flaskr import create_app; "
            'print(create_app({"TESTING": True}).config["MAX_CONTENT_LENGTH"])\''
        ).split()[-1]
    )
    assert limit == 5376 * 1024  # client_max_body_size 5376k in deploy/nginx/flaskr.conf
    over = m.client("upload", str(limit + 1), "--headers-only")
    assert over["status"] == 413 and "nginx" in str(over["body"]), over
    at_limit = m.client("upload", str(limit))
    assert at_limit["status"] != 413, at_limit  # passed on: the app answers (login, CSRF...)


def test_socket_is_reachable_by_nginx_only(host: Host) -> None:
    m = host.machine
    assert m.sh(f"stat -c '%A %U %G' {SOCKET}") == "srwxrwx--- flaskr www-data"
    assert m.sh("stat -c '%A %U %G' /run/flaskr") == "drwxr-x--- flaskr www-data"
    print("\n" + m.sh(f"ls -l {SOCKET}"))


def test_unit_verifies_and_is_sandboxed(host: Host) -> None:
    m = host.machine
    verify = m.run(["systemd-analyze", "verify", "/etc/systemd/system/flaskr.service"])
    assert verify.stdout == "" and verify.stderr == "", verify.stderr
    online = exposure(m.run(["systemd-analyze", "security", "--no-pager", "flaskr"]).stdout)
    offline = exposure(
        m.run(
            ["systemd-analyze", "security", "--offline=true", "/etc/systemd/system/flaskr.service"]
        ).stdout
    )
    print(f"\nexposure: {online} (running unit), {offline} (unit file, --offline=true)")
    assert online <= MAX_EXPOSURE and offline <= MAX_EXPOSURE
    # The sandbox is really applied to the running master.
    main, _ = flaskr_pids(m)
    status = m.sh(f"cat /proc/{main}/status")
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    assert re.search(r"^Seccomp:\s+2$", status, re.M)
    assert re.search(r"^CapEff:\s+0+$", status, re.M)
    assert m.sh(f"stat -c %U /proc/{main}") == "flaskr"


def test_reload_under_load_fails_no_request(host: Host) -> None:
    m = host.machine
    main, workers = flaskr_pids(m)
    assert len(workers) == 3
    with m.load() as load:
        load.wait_ok(100)
        m.run(["systemctl", "reload", "flaskr"])
        wait_workers_replaced(m, main, workers)
        load.more(300)
        result = load.stop()
    print(f"\nreload under load: sent {result['sent']}, failed {result['failed']}")
    assert result["failed"] == 0, result["errors"]


#: Code a reload must refuse, and where it breaks: at import in the new master, or in each new
#: worker as it starts (gunicorn's post_worker_init takes flaskr's serving lock).
BROKEN = {
    "import": ("/opt/flaskr/app/flaskr/hello.py", "$ a def broken(:"),
    "worker": (
        "/opt/flaskr/app/flaskr/serving/lock.py",
        '/^def hold_serving_lock/a \\    raise RuntimeError("this worker cannot start")',
    ),
    "slow worker": (
        "/opt/flaskr/app/flaskr/serving/lock.py",
        "/^def hold_serving_lock/a \\    __import__('time').sleep(3); raise RuntimeError('late')",
    ),
}


@pytest.mark.parametrize("where", BROKEN)
def test_a_reload_onto_code_that_cannot_serve_keeps_the_old_serving(host: Host, where: str) -> None:
    """flaskr-reload's refusal: the new master dies loading the app, or its workers die
    starting, so the old master stays the main process, serving under load, and `systemctl
    reload` fails, saying so."""
    m = host.machine
    main, workers = flaskr_pids(m)
    path, edit = BROKEN[where]
    m.run(["cp", "-p", path, "/root/good.py"])
    m.run(["sed", "-i", edit, path])
    try:
        with m.load() as load:
            load.wait_ok(50)
            refused = m.run(["systemctl", "reload", "flaskr"], check=False)
            load.more(100)
            result = load.stop()
    finally:
        m.run(["mv", "/root/good.py", path])  # -p kept its time: the bytecode stays valid
    print(f"\nreload onto code broken at {where}: sent {result['sent']}, failed {result['failed']}")
    assert refused.returncode != 0
    # The old master and workers, alone again once it has reaped the new master.
    until(lambda: flaskr_pids(m) == (main, workers), 30, "the old master alone again")
    assert m.sh("systemctl is-active flaskr") == "active"
    said = m.sh("journalctl -u flaskr --no-pager -o cat | grep '^flaskr-reload:' | tail -n 1")
    assert "exited before serving; the old code still serves" in said, said
    assert result["failed"] == 0, result["errors"]


def test_reloads_back_to_back_each_take_effect(host: Host) -> None:
    """A master promoted by one reload ignores USR2 for a moment: the next reload asks again."""
    m = host.machine
    first, _ = flaskr_pids(m)
    m.run(["systemctl", "reload", "flaskr"])
    second, _ = flaskr_pids(m)
    m.run(["systemctl", "reload", "flaskr"])
    third, workers = flaskr_pids(m)
    assert len({first, second, third}) == 3 and len(workers) == 3
    m.wait_http("/healthz")


def test_reinstall_is_a_noop(host: Host) -> None:
    """A second run changes nothing, drops no request, and no local user can hold it up: one
    who takes a lock name in world-writable /run/lock (where install-host kept its lock, and
    every run then waited 900 s and failed) delays nothing."""
    m = host.machine
    before = snapshot(m), flaskr_pids(m), nginx_pids(m)
    taken = "runuser -u nobody -- flock /run/lock/flaskr-install-host.lock sleep 600"
    m.sh(f"{taken} </dev/null >/dev/null 2>&1 &")
    try:
        with m.load() as load:
            load.wait_ok(50)
            done = m.run(INSTALL, timeout=300)
            load.more(100)
            result = load.stop()
    finally:
        m.sh("pkill -u nobody || true")
    assert m.sh("stat -c '%U %a' /run/flaskr-install") == "root 700"
    print(f"\nre-install under load: sent {result['sent']}, failed {result['failed']}")
    assert "nothing changed" in done.stdout, done.stdout
    assert not re.search(r"wrote|removed|reloading|restarting|starting|creating", done.stdout)
    assert (snapshot(m), flaskr_pids(m), nginx_pids(m)) == before
    assert result["failed"] == 0, result["errors"]


def test_reinstall_keeps_certbots_edits_of_the_site(host: Host) -> None:
    m = host.machine
    site = "/etc/nginx/sites-available/flaskr"
    m.sh(f"echo '# ssl_certificate ... # managed by Certbot' >> {site}")
    done = m.run(INSTALL, timeout=300)
    assert "nothing changed" in done.stdout, done.stdout
    assert "managed by Certbot" in m.sh(f"cat {site}")
    done = m.run([*INSTALL, "--replace-site"], timeout=300)
    assert f"wrote {site}" in done.stdout and "reloading nginx" in done.stdout, done.stdout
    assert "managed by Certbot" not in m.sh(f"cat {site}")
    m.wait_http("/healthz")


def newer_checkout(host: Host, tag: str) -> tuple[list[str], str]:
    """A copy of the checkout with one new static file and a view that says ``tag`` (its
    /hello answers "Hello, TAG!"), as a `git pull` brings: the command that installs it (the
    guide's, with no settings given) and the new file's name."""
    shutil.copytree(host.src / "flaskr", host.src / f"flaskr-{tag}")
    marker = f"{tag}-{uuid.uuid4().hex[:8]}.txt"
    (host.src / f"flaskr-{tag}/flaskr/static" / marker).write_text(f"the {tag} checkout\n")
    factory = host.src / f"flaskr-{tag}/flaskr/__init__.py"
    factory.write_text(factory.read_text().replace('"Hello, World!"', f'"Hello, {tag}!"'))
    return [f"{SRC}/flaskr-{tag}/scripts/install-host", "--wheels", "/srv/wheels"], marker


def test_deploy_host_upgrading_under_load(host: Host) -> None:
    """The guide's upgrade in the checkout the first recipe unpacked: what `git pull` brings
    (the machine has neither git nor network) is copied over it, then install-host."""
    m = host.machine
    _, marker = newer_checkout(host, "newer")
    pull = f"cp -a {SRC}/flaskr-newer/. ."
    lines = recipe("docs/deploy-host.md", "Upgrading", 0, {"git pull": pull, "sudo ": ""})
    main, workers = flaskr_pids(m)
    with m.load() as load:
        load.wait_ok(50)
        done = m.recipe(lines, "/root")
        wait_workers_replaced(m, main, workers)
        load.more(200)
        result = load.stop()
    print(f"\nupgrade under load: sent {result['sent']}, failed {result['failed']}")
    assert f"wrote /opt/flaskr/app/flaskr/static/{marker}" in done.stdout, done.stdout
    assert "reloading flaskr" in done.stdout and "restarting" not in done.stdout
    assert m.client("get", f"/static/{marker}")["body"] == "the newer checkout\n"
    assert m.client("get", "/hello")["body"] == "Hello, newer!"  # gunicorn runs the new code
    assert result["failed"] == 0, result["errors"]


def test_an_upgrade_that_cannot_serve_is_taken_back_out(host: Host) -> None:
    """A new release whose workers cannot start: install-host fails and says why, the release
    that served goes on serving, and its code is back in place, so a restart runs it too."""
    m = host.machine
    broken_install, marker = newer_checkout(host, "broken")
    lock = host.src / "flaskr-broken/flaskr/serving/lock.py"
    start = "def hold_serving_lock(app: Flask) -> None:\n"
    lock.write_text(
        lock.read_text().replace(start, start + '    raise RuntimeError("cannot start")\n')
    )
    served = m.client("get", "/hello")["body"]
    main, workers = flaskr_pids(m)
    with m.load() as load:
        load.wait_ok(50)
        done = m.run(broken_install, check=False, timeout=300)
        load.more(100)
        result = load.stop()
    print(f"\nupgrade that cannot serve: sent {result['sent']}, failed {result['failed']}")
    assert done.returncode != 0 and "the new release did not start" in done.stderr, done
    assert "putting the release that served back in place" in done.stdout
    until(lambda: flaskr_pids(m) == (main, workers), 30, "the old master alone again")
    same = "diff -r -x __pycache__ /opt/flaskr/release/flaskr /opt/flaskr/app/flaskr && echo same"
    assert m.sh(same) == "same"
    assert m.client("get", f"/static/{marker}")["status"] == 404
    m.run(["systemctl", "restart", "flaskr"])
    m.wait_http("/healthz")
    assert m.client("get", "/hello")["body"] == served
    assert result["failed"] == 0, result["errors"]


def test_an_upgrade_that_fails_its_check_is_taken_back_out(host: Host) -> None:
    """A new release that starts but answers errors: install-host's last check fails, and the
    release that served before is put back and reloaded."""
    m = host.machine
    failing_install, _ = newer_checkout(host, "failing")
    health = host.src / "flaskr-failing/flaskr/health.py"
    health.write_text(
        health.read_text().replace('    return {"status": "ok"}', '    raise RuntimeError("no")')
    )
    served = m.client("get", "/hello")["body"]
    done = m.run(["env", "FLASKR_HEALTH_SECONDS=3", *failing_install], check=False, timeout=300)
    assert done.returncode != 0, done
    assert "the release that served before is back in place and reloaded" in done.stderr, done
    assert m.client("get", "/hello")["body"] == served
    assert m.client("get", "/healthz")["status"] == 200
    same = "diff -r -x __pycache__ /opt/flaskr/release/flaskr /opt/flaskr/app/flaskr && echo same"
    assert m.sh(same) == "same"
    # A release whose code does not import: said so (not "the migration failed"), put back.
    unimportable, _ = newer_checkout(host, "unimportable")
    factory = host.src / "flaskr-unimportable/flaskr/__init__.py"
    factory.write_text(factory.read_text() + '\nraise RuntimeError("broken at import")\n')
    done = m.run(unimportable, check=False, timeout=300)
    assert done.returncode == 1 and "this release's code does not import" in done.stderr, done
    assert "putting the release that served back in place" in done.stdout, done.stdout
    assert m.sh(same) == "same" and m.client("get", "/hello")["body"] == served


SITE = "/etc/nginx/sites-available/flaskr"
NAME = "blog.example.org"


def test_an_upgrade_keeps_the_server_name_it_was_installed_with(host: Host) -> None:
    """Installed for a name, certbot's edits in the site, then upgraded with the guide's plain
    line: the name still answers, and nothing claims the checkout's site changed."""
    m = host.machine
    named = m.run(["env", f"FLASKR_SERVER_NAME={NAME}", *INSTALL], timeout=300)
    assert f"answers /healthz with 200 as: {NAME}\n" in named.stdout, named.stdout
    assert m.sh("cat /etc/flaskr/install.env") == f"FLASKR_SERVER_NAME='{NAME}'"
    assert m.sh("stat -c '%a %U' /etc/flaskr/install.env") == "600 root"
    m.sh(f"echo '# ssl_certificate ... # managed by Certbot' >> {SITE}")
    upgrade, marker = newer_checkout(host, "named")
    done = m.run(upgrade, timeout=300)
    print(f"\nupgrade without the name:\n{done.stdout}")
    assert "reloading flaskr" in done.stdout and f"server names: {NAME})" in done.stdout
    # Migrated through `sudo flaskr`, with the service's settings (a drop-in's database too).
    assert "install-host:   The database is up to date.\n" in done.stdout
    assert "changed too" not in done.stdout and "managed by Certbot" in m.sh(f"cat {SITE}")
    assert m.client("get", f"/static/{marker}", NAME)["status"] == 200
    assert m.client("get", "/healthz", "localhost") == {"error": "RemoteDisconnected"}


def test_install_host_is_never_done_while_its_name_does_not_answer(host: Host) -> None:
    m = host.machine
    # The site edited here so that it no longer serves the remembered name (kept: a local edit).
    m.sh(f"sed -i 's/server_name {NAME};/server_name other.example;/' {SITE}")
    m.sh("systemctl reload nginx")
    broken = m.run(["env", "FLASKR_HEALTH_SECONDS=3", *INSTALL], check=False, timeout=300)
    assert broken.returncode != 0 and "done" not in broken.stdout, broken.stdout
    assert f"Host: {NAME} on 127.0.0.1 answers: the connection was closed" in broken.stderr
    # Back to the default names: an empty value forgets the remembered one.
    back = m.run([*INSTALL, "--replace-site", "--server-name", ""], timeout=300)
    assert f"answers /healthz with 200 as: localhost {m.name}" in back.stdout, back.stdout
    assert m.sh("cat /etc/flaskr/install.env") == ""
    m.wait_http("/healthz")


def test_deploy_host_the_micro_cache_for_visitors_opt_in(host: Host) -> None:
    """install-host --micro-cache: nginx answers visitors from its cache (the freshness rule
    is tests/e2e/test_micro_cache.py's, on this same site); a plain re-install keeps it and
    changes nothing; --no-micro-cache takes it away."""
    m = host.machine
    lines = recipe("docs/deploy-host.md", "The micro-cache for visitors (opt-in)", 0, {"sudo ": ""})
    on = m.recipe(lines, f"{SRC}/flaskr")
    assert "wrote /etc/nginx/snippets/flaskr-micro-cache.conf" in on.stdout, on.stdout
    assert "reloading nginx" in on.stdout and "reloading flaskr" not in on.stdout
    assert m.sh("cat /etc/flaskr/install.env") == "FLASKR_MICRO_CACHE='1'"

    def cache_status() -> object:
        return m.client("get", "/")["headers"].get("x-cache-status")  # type: ignore[union-attr]

    until(lambda: cache_status() == "HIT", 15, "the index from nginx's micro-cache")
    assert "nothing changed" in m.run(INSTALL, timeout=300).stdout
    off = m.run([*INSTALL, "--no-micro-cache"], timeout=300)
    assert "removed /etc/nginx/snippets/flaskr-micro-cache.conf" in off.stdout, off.stdout
    assert m.sh("cat /etc/flaskr/install.env") == ""
    # nginx's old workers, still on the cache, finish their connections after the reload.
    until(lambda: cache_status() is None, 15, "nginx to answer without its micro-cache")


def admins(user: str) -> dict[str, str]:
    """The recipes' replacements: a user of the test's own for the guides' "admin"."""
    return {"sudo ": "", "user admin": f"user {user}", "make-admin admin": f"make-admin {user}"}


def test_deploy_host_the_app_s_commands_sudo_flaskr(host: Host, post: dict[str, object]) -> None:
    m = host.machine
    user = f"admin{uuid.uuid4().hex[:6]}"
    password = "pw-" + uuid.uuid4().hex
    lines = recipe("docs/deploy-host.md", "The app's commands: sudo flaskr", 0, admins(user))
    # The password typed twice at create-user's prompts.
    done = m.recipe(lines, "/root", stdin=f"{password}\n{password}\n")
    assert f"Created user {user}." in done.stdout, done
    assert f"{user} is an admin." in done.stdout and "create-user" in done.stdout, done
    # The site's own database: the person who posted through nginx is found there.
    made = m.run(["flaskr", "make-admin", str(post["user"])])
    assert f"{post['user']} is an admin." in made.stdout
    again = m.run(
        ["flaskr", "create-user", user, "--password", "pw-" + uuid.uuid4().hex], check=False
    )
    assert again.returncode == 1 and "already registered" in again.stderr
    assert m.sh("find /var/lib/flaskr ! -user flaskr") == ""  # nothing of root's in its data
    # flask run by root from the code folder: no database there, so it says so and makes none.
    stray = m.run(
        ["sh", "-c", "cd /opt/flaskr/app && venv=/opt/flaskr/venv && "
         "$venv/bin/flask --app flaskr create-user x --password p"],
        check=False,
    )  # fmt: skip
    assert stray.returncode == 1 and "Traceback" not in stray.stderr, stray.stderr
    assert "there is no database at /opt/flaskr/app/instance/flaskr.sqlite" in stray.stderr
    assert "sudo flaskr COMMAND" in stray.stderr
    assert m.sh("ls -A /opt/flaskr/app/instance") == ""


def test_operating_users_and_admins_on_the_host(host: Host, post: dict[str, object]) -> None:
    m = host.machine
    user = f"ops{uuid.uuid4().hex[:6]}"
    lines = recipe("docs/operating.md", "Users and admins", 0, admins(user))
    lines = [line.replace(" alice", f" {post['user']}") for line in lines]  # who exists here
    password = "pw-" + uuid.uuid4().hex
    done = m.recipe(lines, "/root", stdin=f"{password}\n{password}\n")
    assert f"Created user {user}." in done.stdout and f"{user} is an admin." in done.stdout
    assert f"failed logins counted against {post['user']}." in done.stdout, done.stdout


def test_operating_metrics_host(host: Host) -> None:
    """The drop-in, written without an editor, then a restart: /metrics through nginx."""
    m = host.machine
    lines = recipe("docs/operating.md", "Metrics", 0, {
        "sudo ": "", "blog.example.org": "localhost", "curl ": "curl -sS --fail ",
    })  # fmt: skip
    try:
        done = m.recipe(lines, "/root")
    finally:
        m.sh("rm -f /etc/systemd/system/flaskr.service.d/metrics.conf && systemctl daemon-reload"
             " && systemctl restart flaskr")  # fmt: skip
    m.wait_http("/healthz", timeout=60)
    assert "# TYPE flaskr_database_errors_total counter" in done.stdout, done.stdout[-2000:]


def test_deploy_host_upgrading_rollback_stays_until_forward(host: Host) -> None:
    """The last install (the original checkout) replaced the named upgrade: --rollback brings
    that release back and stays: a plain re-run or --micro-cache from the newer checkout says
    so and changes nothing; --rollback refuses while the database is newer than what it
    knows; --forward installs the checkout's release again."""
    m = host.machine
    marker = next((host.src / "flaskr-named/flaskr/static").glob("named-*.txt")).name
    assert m.client("get", f"/static/{marker}")["status"] == 404
    rolled = m.recipe(recipe("docs/deploy-host.md", "Upgrading", 1, {"sudo ": ""}), f"{SRC}/flaskr")
    print(f"\nrollback:\n{rolled.stdout}")
    assert "rolling back to the release in /opt/flaskr/previous" in rolled.stdout
    assert "kept the release rolled back from in /opt/flaskr/previous" in rolled.stdout
    assert "run install-host with --forward" in rolled.stdout
    assert m.client("get", f"/static/{marker}")["status"] == 200
    before = snapshot(m), flaskr_pids(m)
    for args in ([], ["--micro-cache"]):
        kept = m.run([*INSTALL, *args], check=False, timeout=300)
        assert kept.returncode != 0 and "the site was rolled back" in kept.stderr, kept
        assert "run again with --forward" in kept.stderr and "done" not in kept.stdout, kept
    assert (snapshot(m), flaskr_pids(m)) == before  # nothing changed, nothing reloaded
    sql = (
        "import sqlite3, sys; c = sqlite3.connect('/var/lib/flaskr/flaskr.sqlite'); "
        "print(c.execute('select version_num from alembic_version').fetchone()[0]); "
        "c.execute('update alembic_version set version_num=?', sys.argv[1:]); c.commit()"
    )
    as_flaskr = ["runuser", "-u", "flaskr", "--", "/opt/flaskr/venv/bin/python", "-c", sql]
    # The backup taken before the upgrade; then the upgrade's migration (a revision neither
    # release knows stands for it).
    backup = m.sh("flaskr backup --json --quiet | tail -n 1")
    revision = m.run([*as_flaskr, "9999_from_the_future"]).stdout.strip()
    try:
        refused = m.run([*INSTALL, "--rollback"], check=False, timeout=300)
        assert refused.returncode != 0 and "refusing to roll back" in refused.stderr, refused
        assert m.client("get", f"/static/{marker}")["status"] == 200  # nothing was changed
        # A checkout older than the database: said so, and the serving release put back.
        older = m.run([*INSTALL, "--forward"], check=False, timeout=300)
        assert older.returncode == 1, older
        assert "the database was migrated by a newer release than this checkout" in older.stderr
        assert "putting the release that served back in place" in older.stdout, older.stdout
        assert m.client("get", f"/static/{marker}")["status"] == 200
        # The refusal's own way out, as it prints it: stop, restore the backup without
        # migrating it, --rollback (with the service stopped), which goes forward again here
        # (a second --rollback) and ends the rollback.
        advice = re.search(
            r"roll back: (sudo systemctl stop flaskr && .*? --rollback)", refused.stderr
        )
        assert advice and f"--no-migrate {json.loads(backup)['path']} &&" in advice[1], refused
        back = m.run(["sh", "-c", advice[1].replace("sudo ", "")], timeout=300)
    finally:
        m.run([*as_flaskr, revision])
    print(f"\nthe refusal's way out:\n{advice[1]}\n{back.stdout}")
    assert "not migrated (--no-migrate)" in back.stdout and "starting flaskr" in back.stdout
    assert "the rollback is over" in back.stdout, back.stdout
    assert m.client("get", f"/static/{marker}")["status"] == 404
    assert m.sh("test -e /opt/flaskr/rolled-back || echo over") == "over"
    # So does --forward, after another rollback.
    again = m.run([*INSTALL, "--rollback"], timeout=300)
    assert "rolled back: later runs keep this release" in again.stdout, again.stdout
    forward = m.run([*INSTALL, "--forward"], timeout=300)
    assert "the rollback is over" in forward.stdout, forward.stdout
    assert m.client("get", f"/static/{marker}")["status"] == 404
    assert m.sh("test -e /opt/flaskr/rolled-back || echo over") == "over"


# --- PostgreSQL: Debian's server in the machine, on its loopback, stands in for db.example.org.

#: The role and password the guides' URL holds; its databases are made by ``postgres``.
PG_PASSWORD = "pw-" + uuid.uuid4().hex
DATABASE_ENV = "/etc/flaskr/database.env"


def postgres(machine: Machine) -> None:
    """The machine's PostgreSQL answering, with the role flaskr and two empty databases: one
    for a new site (deploy-host.md), one to move this site's data to (operating.md)."""
    machine.sh("for i in $(seq 150); do pg_isready -q -h 127.0.0.1 && exit 0; sleep 0.2; done;"
               " pg_isready -h 127.0.0.1", timeout=60)  # fmt: skip
    psql = "runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -c"
    machine.sh(
        f"{psql} \"CREATE ROLE flaskr LOGIN PASSWORD '{PG_PASSWORD}'\" && "
        "runuser -u postgres -- createdb -O flaskr newsite && "
        "runuser -u postgres -- createdb -O flaskr moved"
    )


def pg_url(database: str, password: bool = True) -> str:
    return f"postgresql://flaskr{':' + PG_PASSWORD if password else ''}@127.0.0.1/{database}"


def test_deploy_host_postgresql_a_new_site(host: Host) -> None:
    """The guide's new site on PostgreSQL: database.env, the network drop-ins, init-db through
    `sudo flaskr`, a restart, and the daily backup as a .pgdump. Back to SQLite afterwards
    (the drop-ins stay, for operating.md's move below)."""
    m = host.machine
    postgres(m)
    write_env = f"echo 'FLASKR_DATABASE_URL={pg_url('newsite')}' > {DATABASE_ENV}"
    lines = recipe("docs/deploy-host.md", "PostgreSQL", 0, {
        "sudoedit /etc/flaskr/database.env": write_env, "sudo ": "",
    })  # fmt: skip
    earlier = set(m.sh("ls /var/lib/flaskr/backups 2>/dev/null || true").split())
    try:
        done = m.recipe(lines, "/root")
        m.wait_http("/healthz", timeout=60)
        index = m.client("get", "/")
        tables = m.sh("runuser -u postgres -- psql -d newsite -tAc 'SELECT count(*) FROM post'")
        made = sorted(set(m.sh("ls /var/lib/flaskr/backups").split()) - earlier)
    finally:
        m.sh(f"rm -f {DATABASE_ENV} && systemctl restart flaskr")
    print(f"\nPostgreSQL, a new site:\n{done.stdout[-1500:]}")
    assert "already the newest version" in done.stdout, done.stdout  # postgresql-client
    assert index["status"] == 200 and tables == "0", (index, tables)
    assert len(made) == 1 and made[0].endswith(".pgdump"), made
    assert m.sh(f"stat -c '%a %U' /var/lib/flaskr/backups/{made[0]}") == "600 flaskr"
    m.wait_http("/healthz", timeout=60)


def test_operating_moving_to_postgresql_on_the_host(host: Host, post: dict[str, object]) -> None:
    """operating.md's move of this (SQLite) site's data to PostgreSQL, after deploy-host.md's
    drop-ins (the test above): copy-db with the password from a file (it asks only in a
    terminal), then the site serves the same post from PostgreSQL. Back to SQLite after."""
    m = host.machine
    m.sh(f"install -m 0600 /dev/null /root/pgpw && echo '{PG_PASSWORD}' > /root/pgpw")
    write_env = f"echo 'FLASKR_DATABASE_URL={pg_url('moved')}' > /etc/flaskr/target.env"
    lines = recipe("docs/operating.md", "Moving to PostgreSQL", 0, {
        "sudoedit /etc/flaskr/target.env": write_env,
        "'TARGET'": f"'{pg_url('moved', password=False)}' --password-file /root/pgpw",
        "sudo ": "",
    })  # fmt: skip
    try:
        done = m.recipe(lines, "/root")
        m.wait_http("/healthz", timeout=60)
        m.client("check-post", str(post["post_id"]), str(post["title"]), "37", "23")
        on = m.sh(f"cat {DATABASE_ENV}")
    finally:
        m.sh(
            f"systemctl start flaskr; rm -f {DATABASE_ENV} /etc/flaskr/target.env /root/pgpw"
            " /etc/systemd/system/flaskr*.service.d/network.conf && systemctl daemon-reload"
            " && systemctl restart flaskr"
        )
    print(f"\nmoving to PostgreSQL:\n{done.stdout[-1500:]}")
    assert on == f"FLASKR_DATABASE_URL={pg_url('moved')}"
    title = str(post["title"]).replace("'", "''")
    found = m.sh(
        f"runuser -u postgres -- psql -d moved -tAc \"SELECT count(*) FROM post WHERE title = '{title}'\""
    )
    assert found == "1", found
    m.wait_http("/healthz", timeout=60)


def test_kill_9_of_the_master_is_restarted(host: Host) -> None:
    m = host.machine
    main, _ = flaskr_pids(m)
    restarts = int(m.show("flaskr", "NRestarts")["NRestarts"])
    started = time.monotonic()
    m.run(["kill", "-9", str(main)])

    def restarted() -> bool:
        state = m.show("flaskr", "MainPID", "ActiveState", "SubState")
        return state["ActiveState"] == "active" and int(state["MainPID"]) not in (0, main)

    until(restarted, 30, "flaskr to be restarted", step=0.1)
    m.wait_http("/healthz", timeout=30)
    elapsed = time.monotonic() - started
    print(f"\nkill -9 of the master: answering again after {elapsed:.1f}s")
    assert int(m.show("flaskr", "NRestarts")["NRestarts"]) == restarts + 1
    assert elapsed < 20


def test_reboot_brings_it_back_with_every_post(host: Host, post: dict[str, object]) -> None:
    m = host.machine
    assert m.poweroff() == 0, m.tail()
    started = time.monotonic()
    m.boot()
    m.wait_http("/healthz", timeout=60)
    print(f"\nreboot: answering {time.monotonic() - started:.1f}s after boot began")
    assert m.run(["systemctl", "is-active", "flaskr"]).stdout.strip() == "active"
    assert m.sh(f"stat -c '%A %U %G' {SOCKET}") == "srwxrwx--- flaskr www-data"
    m.client("check-post", str(post["post_id"]), str(post["title"]), "37", "23")


def post_titles(machine: Machine) -> set[str]:
    out = machine.sh(
        'python3 -c "import sqlite3; [print(t) for (t,) in sqlite3.connect('
        "'/var/lib/flaskr/flaskr.sqlite').execute('SELECT title FROM post')]\""
    )
    return set(out.splitlines())


def test_backup_host_systemd_scripts_install_host_daily_and_restore(
    host: Host, post: dict[str, object]
) -> None:
    m = host.machine
    timers_line, start_line, journal_line = recipe(
        "docs/backup.md", "Host (systemd, scripts/install-host)", 0, {"sudo ": ""}
    )
    assert m.run(["systemctl", "is-enabled", "flaskr-backup.timer"]).stdout.strip() == "enabled"
    timers = m.recipe([timers_line], "/root")
    line = next(x for x in timers.stdout.splitlines() if "flaskr-backup.timer" in x)
    print(f"\nsystemctl list-timers: {line}")
    assert "flaskr-backup.service" in line
    timer = m.show("flaskr-backup.timer", "Persistent", "RandomizedDelayUSec", "TimersCalendar")
    assert timer["Persistent"] == "yes" and timer["RandomizedDelayUSec"] == "1h", timer
    unit = "/etc/systemd/system/flaskr-backup.service"
    verify = m.run(["systemd-analyze", "verify", unit, unit.replace("service", "timer")])
    assert verify.stdout == "" and verify.stderr == "", verify.stderr
    # The database settings of the site are the backup's (PostgreSQL: FLASKR_DATABASE_URL).
    files = m.show("flaskr-backup.service", "EnvironmentFiles")["EnvironmentFiles"]
    assert files == m.show("flaskr.service", "EnvironmentFiles")["EnvironmentFiles"]
    assert files.startswith("/etc/flaskr/database.env"), files
    score = exposure(m.run(["systemd-analyze", "security", "--no-pager", "flaskr-backup"]).stdout)
    print(f"flaskr-backup.service exposure: {score}")
    assert score <= MAX_EXPOSURE

    # A run now, as the timer would start it, while people read and write: a private file in
    # the state folder holding every post acknowledged before it started.
    # (The timer may have run already: Persistent=true catches up at boot, after a reboot.)
    earlier = set(m.sh("ls /var/lib/flaskr/backups 2>/dev/null || true").split())
    with Flows(m) as flows, m.load() as load:
        flows.wait_for(2)
        load.wait_ok(50)
        started = time.monotonic()
        m.recipe([start_line], "/root")
        ended = time.monotonic()
        flows.wait_for(len(flows.acknowledged(float("inf"))) + 2)
        load.more(50)
        reads = load.stop()
    print(f"reads during the backup: sent {reads['sent']}, failed {reads['failed']}")
    assert reads["failed"] == 0, reads["errors"]
    before, after = flows.acknowledged(started), flows.acknowledged(float("inf"))
    later = after - flows.acknowledged(ended)
    backups = sorted(set(m.sh("ls /var/lib/flaskr/backups").split()) - earlier)
    assert len(backups) == 1 and backups[0].endswith(".sqlite.gz"), backups
    path = f"/var/lib/flaskr/backups/{backups[0]}"
    assert m.sh(f"stat -c '%a %U' {path}") == "600 flaskr"
    journal = m.recipe([journal_line], "/root").stdout
    summary = json.loads(re.findall(r"^.*?: (\{.*\})$", journal, re.M)[-1])
    assert summary["path"] == path and summary["posts"] >= 1

    # Written after the backup, gone after the restore; everything from before is served again.
    assert later and later <= post_titles(m)
    # The admin command, as docs/backup.md restores: the service's user, settings and database.
    refused = m.run(["flaskr", "restore", path], check=False, timeout=300)
    assert refused.returncode == 1 and "while the app serves" in refused.stderr, refused.stderr
    restore = recipe(
        "docs/backup.md",
        "Host (systemd, scripts/install-host)",
        1,
        {"sudo ": "", "FILE": backups[0]},
    )
    try:
        done = m.recipe(restore, "/root")
        assert "Kept the previous database as" in done.stdout, done.stdout
    finally:
        m.run(["systemctl", "start", "flaskr"])
    m.wait_http("/healthz", timeout=60)
    titles = post_titles(m)
    print(f"host restore drill: {len(before & titles)} of {len(before)} posts acknowledged before")
    assert before and before <= titles and not later & titles
    assert str(post["title"]) in titles
    m.client("check-post", str(post["post_id"]), str(post["title"]), "37", "23")


class Flows:
    """Two people at a time going through the whole flow (register, post with an image) in a
    loop; each post's title is kept with the moment the site acknowledged it."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.stop = threading.Event()
        self.done: list[tuple[str, float]] = []
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self.run, args=(n,)) for n in range(2)]

    def run(self, n: int) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            title = f"Drill-{n}-{i}-{uuid.uuid4().hex[:6]}"
            try:
                self.machine.client("flow", title)
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(str(e)[:500])
                return
            self.done.append((title, time.monotonic()))

    def acknowledged(self, before: float) -> set[str]:
        return {title for title, at in list(self.done) if at < before}

    def wait_for(self, count: int, timeout: float = 120) -> None:

        def done() -> bool:
            assert not self.errors, self.errors
            return len(self.done) >= count

        until(done, timeout, f"{count} flows", step=0.1)

    def __enter__(self) -> Flows:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(180)
        assert not self.errors, self.errors


# --- the seed's claims, measured: the isolation report from the service and its server ------

#: Turns the operator page on for the installed service, for one test; removed afterwards.
DROP_IN = "/etc/systemd/system/flaskr.service.d/isolation.conf"


def test_isolation_report_from_the_service_and_the_server_beside_it(
    host: Host, tmp_path: Path
) -> None:
    """The report collected by the gunicorn worker serving /admin/isolation.json through nginx,
    with the page enabled by a drop-in, and the report of a root shell on the same machine
    (the seed's "connect to your server"). Last in the file: it restarts the service twice."""
    m = host.machine
    admin, password = f"op{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    conf = "[Service]\nEnvironment=FLASKR_ISOLATION_PAGE=true\n"
    folder = os.path.dirname(DROP_IN)
    # The operator's commands, run as the service's user on its database (as install-host
    # migrates it): an admin is made by a decision, never by a name.
    flask = (
        "cd /opt/flaskr/app && runuser -u flaskr -g www-data -- env -i "
        "PATH=/opt/flaskr/venv/bin:/usr/bin:/bin LANG=C.UTF-8 FLASKR_INSTANCE_PATH=/var/lib/flaskr "
        "PYTHONDONTWRITEBYTECODE=1 /opt/flaskr/venv/bin/flask --app flaskr"
    )
    m.sh(
        f"{flask} create-user {admin} --password {password} && {flask} make-admin {admin} && "
        f"mkdir -p {folder} && printf %s {shlex.quote(conf)} > {DROP_IN} && "
        "systemctl daemon-reload && systemctl restart flaskr",
        timeout=120,
    )
    try:
        m.wait_http("/healthz", timeout=60)
        answer = m.client("isolation", admin, password)
        state = m.show("flaskr", "MainPID", "InvocationID")
        pid1_ns = m.sh("readlink /proc/1/ns/pid")
        pid1_comm = m.sh("cat /proc/1/comm")
        beside = json.loads(
            m.run(
                [
                    "sh",
                    "-c",
                    "cd /opt/flaskr/app && exec /opt/flaskr/venv/bin/python -B "
                    "-m flaskr.isolation --json --no-commands",
                ]
            ).stdout
        )
    finally:
        m.sh(f"rm -rf {folder} && systemctl daemon-reload && systemctl restart flaskr")
        m.wait_http("/healthz", timeout=60)
    assert answer["visitor"] == 404  # the page stays hidden from everyone else
    assert answer["status"] == 200, answer
    assert answer["headers"]["cache-control"] == "no-store"
    service = answer["report"]
    assert isinstance(service, dict)
    out = isolation_out(tmp_path)
    save_report(out, "service.json", formatting.without_commands(service, keep=is_gunicorn))
    save_report(out, "host-beside-service.json", beside)
    print(formatting.format_compare(service, beside, ("service", "root shell")))

    sup, priv, procs = service["supervisor"], service["privileges"], service["processes"]
    # Supervised by systemd, as the unit flaskr.service, in this very invocation.
    assert sup["systemd"] is True and sup["unit"] == "flaskr.service", sup
    assert sup["invocation_id"].replace("-", "") == state["InvocationID"].replace("-", "")
    assert "INVOCATION_ID is set" in sup["evidence"]
    # The hardening the unit asks for, as the kernel applies it to the worker.
    assert priv["no_new_privs"] is True and priv["capabilities"] == [], priv
    assert priv["cap_eff"].strip("0") == ""
    assert priv["seccomp"] == "filter"
    assert priv["euid"] != 0 and priv["user"] == "flaskr", priv
    assert priv["read_only_root"] is True
    # The machine's own PID namespace, the one its init (systemd) runs in: no namespace of
    # its own, unlike the container. (The machine is itself a container on the CI host, so
    # that namespace is not the kernel's initial one: the report rightly says "own" for both.)
    assert pid1_comm == "systemd"
    assert procs["ns_pid"] == pid1_ns == beside["processes"]["ns_pid"], (procs, pid1_ns)
    # ProtectProc=invisible: the worker sees its own user's processes only, the master and
    # three workers; PID 1 and everyone else's processes are hidden, not merely unreadable.
    assert procs["proc_hidepid"] == "hidepid=invisible"
    assert procs["count"] == 4 and all(is_gunicorn(p) for p in procs["visible"]), procs
    assert {p["user"] for p in procs["visible"]} == {"flaskr"}
    assert procs["pid1"] is None and procs["reasons"]["pid1"].startswith("hidden")
    assert int(state["MainPID"]) in [p["pid"] for p in procs["visible"]]
    assert sup["parent"]["pid"] == int(state["MainPID"])
    # python and pip are the venv's: the unit's PATH puts it first.
    deps = service["dependencies"]
    assert deps["on_path"]["python"]["path"] == "/opt/flaskr/venv/bin/python"
    assert deps["on_path"]["pip"]["path"] == "/opt/flaskr/venv/bin/pip"
    # The server's root shell beside it: the same namespace, where `ps aux` shows every
    # process of the machine under systemd as PID 1, and python3 is the system's.
    hp, hd = beside["processes"], beside["dependencies"]
    assert hp["count"] > 10 and hp["proc_hidepid"] is None, hp
    assert hp["pid1"] in ("/sbin/init", "/lib/systemd/systemd", "/usr/lib/systemd/systemd"), hp
    users = {p["user"] for p in hp["visible"]}
    assert {"root", "flaskr", "www-data"} <= users, users
    assert hd["on_path"]["python3"]["path"] == "/usr/bin/python3"
    assert beside["privileges"]["euid"] == 0
    assert "outside its PID namespace" in beside["supervisor"]["reasons"]["parent"]  # nsenter


# --- https as users get it: certbot against a real ACME server, then a certificate of one's own.
# Last in the file: from here on the site answers to NAME, and over https.

#: The site's name. The machine has no DNS: a line in its /etc/hosts stands in for the A
#: record, which pebble's validation and certbot find there. (certbot refuses "localhost".)
NAME = "blog.flaskr.test"
#: docs/deploy-host.md's `certbot --nginx -d NAME`, with what its prompts would ask (e-mail,
#: terms) on the command line, and pebble as the ACME server instead of Let's Encrypt's.
CERTBOT = ["certbot", "--nginx", "-d", NAME, "--non-interactive", "--agree-tos",
           "--email", "admin@flaskr.test", "--server", PEBBLE_DIR]  # fmt: skip
#: pebble's own https listener is signed by the suite's CA: certbot (a client) trusts it this
#: way, for its own requests only. Nothing is added to the machine's trust store.
PEBBLE_TRUST = f"REQUESTS_CA_BUNDLE={SRC}/tls/ca.pem"
#: pebble's issuing root, inside the machine: what the test's clients (curl, openssl, the
#: Python client) trust, passed to each of them, and nothing else does.
PEBBLE_ROOT = "/root/pebble-root.pem"


@dataclass
class Https:
    certbot: subprocess.CompletedProcess[str]
    cafile: str  # the site's CA, inside the machine
    client: tuple[str, ...]  # host_client's options for https to NAME, trusting that CA only


def install_as(name: str, *args: str, src: str = f"{SRC}/flaskr") -> list[str]:
    """install-host as the docs run it: `sudo FLASKR_SERVER_NAME=NAME ./scripts/install-host`."""
    return ["env", f"FLASKR_SERVER_NAME={name}", f"{src}/scripts/install-host", "--wheels",
            "/srv/wheels", *args]  # fmt: skip


HTTPS: list[Https] = []  # set once by the test below


def test_deploy_host_https_as_the_suite_runs_it(host: Host) -> None:
    """docs/deploy-host.md's steps as the guide shows the suite running them: install-host
    with the site's name, then certbot --nginx against pebble."""
    m = host.machine
    issue(make_ca(host.src / "tls", "flaskr suite CA"), "pebble", ["localhost"], ("127.0.0.1",))
    start_pebble(m, f"{SRC}/tls", PEBBLE_ROOT)
    lines = recipe(
        "docs/deploy-host.md",
        "https, as the suite runs it",
        replace={"suite-ca.pem": f"{SRC}/tls/ca.pem"},
    )
    assert lines[-1].split()[1:] == CERTBOT, lines  # the suite's certbot is the guide's
    named = m.recipe(lines[:-1], f"{SRC}/flaskr")  # /etc/hosts, then install-host
    assert f"runs at http://{NAME}/" in named.stdout, named.stdout
    started = time.monotonic()
    done = m.recipe(lines[-1:], f"{SRC}/flaskr")
    print(f"\n$ {lines[-1]}   ({time.monotonic() - started:.1f}s)\n{done.stdout}")
    assert "Successfully received certificate." in done.stdout, done.stdout
    assert f"Congratulations! You have successfully enabled HTTPS on https://{NAME}" in done.stdout
    root = m.rootfs / PEBBLE_ROOT.lstrip("/")
    HTTPS.append(Https(done, PEBBLE_ROOT, ("--host", NAME, "--cafile", str(root))))


@pytest.fixture(scope="module")
def https(host: Host) -> Https:
    """The site with certbot's https (the test above; run here when ``-k`` leaves it out)."""
    if not HTTPS:
        test_deploy_host_https_as_the_suite_runs_it(host)
    return HTTPS[0]


def curl(m: Machine, cafile: str, *args: str) -> subprocess.CompletedProcess[str]:
    return m.run(["curl", "-sS", "--max-time", "20", "--cacert", cafile, *args], check=False)


def s_client(m: Machine, *args: str) -> str:
    """openssl s_client's whole output (it exits 1 when the handshake fails)."""
    return m.sh(f"echo | openssl s_client -connect 127.0.0.1:443 {shlex.join(args)} 2>&1",
                check=False)  # fmt: skip


def assert_https_site(m: Machine, cafile: str, issuer: str) -> str:
    """What every https setup of the site must show; returns `curl -sSI` of the login page."""
    # The certificate is the expected CA's, and verifies against it (curl checks the name).
    served = m.sh(
        f"echo | openssl s_client -connect 127.0.0.1:443 -servername {NAME} 2>/dev/null"
        " | openssl x509 -noout -issuer -subject -ext subjectAltName"
    )
    assert issuer in served and f"DNS:{NAME}" in served, served
    head = curl(m, cafile, "-I", f"https://{NAME}/auth/login")
    assert head.returncode == 0, head.stderr
    lines = head.stdout.lower().splitlines()
    assert lines[0].strip() == "http/2 200", head.stdout  # HTTP/2 negotiated (ALPN)
    assert "server: nginx" in [line.strip() for line in lines], head.stdout  # no version
    cookie = next(line for line in lines if line.startswith("set-cookie: session="))
    assert "; secure" in cookie and "; httponly" in cookie, cookie
    assert lines.count("strict-transport-security: max-age=63072000") == 1, head.stdout
    # Static files come from nginx: HSTS there too, once.
    css = curl(m, cafile, "-I", f"https://{NAME}/static/style.css").stdout.lower()
    assert css.count("strict-transport-security: max-age=63072000") == 1, css
    # http redirects to the same URL over https.
    plain = m.run(["curl", "-sSI", f"http://{NAME}/2?page=1"]).stdout
    assert plain.splitlines()[0].strip() == "HTTP/1.1 301 Moved Permanently", plain
    assert f"Location: https://{NAME}/2?page=1" in plain, plain
    # Without the CA given to it, a client of the machine does not trust the site: the test CA
    # is trusted by the test's clients only.
    assert curl(m, "/etc/ssl/certs/ca-certificates.crt", f"https://{NAME}/").returncode == 60
    # Modern TLS (Mozilla's "intermediate"): TLS 1.1 is refused by the server (the client
    # offers it at OpenSSL's lowest security level, so the refusal is nginx's), 1.2 and 1.3
    # are spoken, and no session ticket is handed out.
    old = curl(m, cafile, "--tlsv1.1", "--tls-max", "1.1", f"https://{NAME}/healthz")
    assert old.returncode == 35 and "alert protocol version" in old.stderr, old.stderr
    old = s_client(m, "-servername", NAME, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
    assert "alert protocol version" in old, old
    for version in ("1_2", "1_3"):
        out = s_client(m, "-servername", NAME, f"-tls{version}", "-CAfile", cafile)
        assert f"New, TLSv{version.replace('_', '.')}, Cipher is" in out, out
        assert "Verify return code: 0 (ok)" in out, out
    assert "TLS session ticket" not in s_client(m, "-servername", NAME, "-tls1_2")
    # The default server on 443: no handshake for an unknown name or none (the bare address),
    # and a known name with a forged Host never reaches the app (444: closed, no answer).
    assert "unrecognized name" in s_client(m, "-servername", "evil.example")
    assert "unrecognized name" in s_client(m, "-noservername")
    forged = curl(m, cafile, "--http1.1", "-H", "Host: evil.example", f"https://{NAME}/healthz")
    assert forged.returncode == 52, forged  # "Empty reply from server"
    return head.stdout


def test_deploy_host_from_a_fresh_server_to_https_certbot(host: Host, https: Https) -> None:
    """The guide's certbot step as a reader types it (pebble for Let's Encrypt, and what its
    prompts ask on the command line), on the site certbot has just set up: the packages are
    there (apt installs nothing; the machine has no network), and certbot keeps the
    certificate it has and deploys it again."""
    m = host.machine
    lines = recipe(
        "docs/deploy-host.md",
        "From a fresh server to https",
        1,
        replace={
            "sudo certbot": f"{PEBBLE_TRUST} certbot",
            "-d blog.example.org": f"-d {NAME} " + shlex.join(CERTBOT[4:]),
            "sudo ": "",
        },
    )
    again = m.recipe(lines, "/root")
    print(f"\n$ {lines[-1]}\n{again.stdout}")
    assert "already the newest version" in again.stdout, again.stdout
    # No stapling for a certificate that names no OCSP responder (pebble's, Let's Encrypt's):
    # nginx warned about it on every check and reload.
    checked = m.run(["nginx", "-t"])
    assert "ssl_stapling" not in checked.stderr, checked.stderr
    site = m.sh("cat /etc/nginx/sites-available/flaskr")
    assert "listen 443 ssl; # managed by Certbot" in site and "return 301 https://" in site
    head = assert_https_site(m, https.cafile, "Pebble Intermediate CA")
    print(f"\n$ curl -sSI https://{NAME}/auth/login\n{head}")
    served = s_client(m, "-servername", NAME, "-status", "-CAfile", https.cafile)
    print(
        "\n".join(
            re.findall(
                r"^(?:subject|issuer|OCSP response|Verify return code).*$|^New, .*$", served, re.M
            )
        )
    )


def test_a_persons_flow_over_https(host: Host, https: Https) -> None:
    m = host.machine
    done = m.client(*https.client, "flow", f"Hello-over-https-{uuid.uuid4().hex[:6]}")
    attributes = [a.strip() for a in str(done["session_cookie"]).split(";")]
    assert "Secure" in attributes and "HttpOnly" in attributes, done
    # Redirects (register, log in, post) lead to https pages of the site.
    locations = done["locations"]
    assert isinstance(locations, list) and len(locations) >= 3, done
    for location in locations:
        assert urljoin(f"https://{NAME}/auth/register", location).startswith(f"https://{NAME}/")
    # The feed's absolute links are https ones, the new post's among them.
    urls = m.client(*https.client, "feed")["urls"]
    assert isinstance(urls, list) and f"https://{NAME}/{done['post_id']}" in urls, urls
    assert all(url.startswith(f"https://{NAME}/") for url in urls), urls


def test_upgrade_keeps_certbots_https(host: Host, https: Https) -> None:
    """docs/deploy-host.md's upgrade (install-host from a newer checkout) after certbot."""
    m = host.machine
    newer = host.src / "flaskr-tls-upgrade"
    shutil.copytree(host.src / "flaskr", newer)
    marker = f"upgrade-{uuid.uuid4().hex[:8]}.txt"
    (newer / "flaskr/static" / marker).write_text("newer, over https\n")
    site = m.sh("cat /etc/nginx/sites-available/flaskr")
    with m.load(options=https.client) as load:
        load.wait_ok(50)
        done = m.run(install_as(NAME, src=f"{SRC}/flaskr-tls-upgrade"), timeout=300)
        load.more(100)
        result = load.stop()
    print(f"\nupgrade after certbot, https load: sent {result['sent']}, failed {result['failed']}")
    print("\n".join(done.stdout.splitlines()[-3:]))
    assert "reloading flaskr" in done.stdout and "sites-available" not in done.stdout, done.stdout
    assert f"flaskr runs at https://{NAME}/" in done.stdout, done.stdout
    assert m.sh("cat /etc/nginx/sites-available/flaskr") == site  # certbot's edits, untouched
    assert m.client(*https.client, "get", f"/static/{marker}")["body"] == "newer, over https\n"
    assert result["failed"] == 0, result["errors"]


#: The certificate nginx serves for NAME, as PEM.
SERVED = f"echo | openssl s_client -connect 127.0.0.1:443 -servername {NAME} 2>/dev/null"


def test_certbot_renewal_reloads_nginx_without_a_failed_request(host: Host, https: Https) -> None:
    m = host.machine
    serial = f"{SERVED} | openssl x509 -noout -serial"
    before = m.sh(serial)
    # As certbot.timer runs it (a forced renewal: a real one, deployed, is more than the
    # --dry-run the docs suggest), without its random pause of up to 8 minutes.
    renew = ["env", PEBBLE_TRUST, "certbot", "renew", "--no-random-sleep-on-renew"]
    with m.load(options=https.client) as load:
        load.wait_ok(50)
        started = time.monotonic()
        forced = m.run([*renew, "--force-renewal"], timeout=300)
        elapsed = time.monotonic() - started
        load.more(100)
        result = load.stop()
    print(f"\ncertbot renew --force-renewal ({elapsed:.1f}s) under https load:"
          f" sent {result['sent']}, failed {result['failed']}\n{forced.stdout}")  # fmt: skip
    assert "Reloading nginx server after certificate renewal" in forced.stdout, forced.stdout
    assert "all renewals succeeded" in forced.stdout, forced.stdout
    after = m.sh(serial)
    assert after != before, after  # the renewed certificate is the one served
    assert result["failed"] == 0, result["errors"]


def test_deploy_host_https_with_a_certificate_you_already_have(host: Host, https: Https) -> None:
    """--tls-cert/--tls-key, for who cannot use ACME: the same https site, with a certificate
    from a CA the suite makes (a company CA, say); kept by later runs until --no-tls. On the
    site certbot edited, the guide's line refuses (the certificate would not be served) and
    says to add --replace-site; with it, the certificate is served."""
    m = host.machine
    ca = make_ca(host.src / "company", "Example Corp Issuing CA")
    cert, key = issue(ca, "blog", [NAME], ocsp="http://127.0.0.1:8888")
    # The file a company CA hands out: the certificate, then its chain.
    chain = cert.with_name("blog-chain.crt")
    chain.write_text(cert.read_text() + ca.read_text())
    start_ocsp_responder(m, cert, f"{SRC}/company", 8888)
    own = ["--tls-cert", f"{SRC}/company/{chain.name}", "--tls-key", f"{SRC}/company/{key.name}"]
    mismatched = m.run(
        install_as(NAME, "--replace-site", *own[:3], f"{SRC}/tls/pebble.key"), check=False
    )
    assert mismatched.returncode != 0 and "not a usable pair: the key is not the certificate's" in mismatched.stderr, mismatched  # fmt: skip
    # Refused before anything is written (the code, the migration), in one clear line.
    assert "syncing the code" not in mismatched.stdout and "wrote" not in mismatched.stdout
    assert "KEY_VALUES_MISMATCH" not in mismatched.stderr, mismatched.stderr
    paths = {"/path/to/blog.crt": own[1], "/path/to/blog.key": own[3]}
    guide = {"blog.example.org": NAME, "sudo ": "", **paths}
    site, installed = m.sh(f"cat {SITE}"), snapshot(m)
    # A certificate that does not cover the site's name: refused, nothing changed.
    wrong, wrong_key = issue(ca, "wrong", ["wrong.example.test"])
    for_wrong = ["--tls-cert", f"{SRC}/company/{wrong.name}", "--tls-key", f"{SRC}/company/{wrong_key.name}"]  # fmt: skip
    uncovered = m.run(install_as(NAME, "--replace-site", *for_wrong), check=False)
    assert uncovered.returncode == 1 and f"does not cover the server name(s) {NAME}" in uncovered.stderr, uncovered  # fmt: skip
    # On certbot's site, an option that changes the site would not take effect: refused.
    cached = m.run(install_as(NAME, "--micro-cache"), check=False)
    assert cached.returncode == 1 and "--micro-cache/--no-micro-cache would not take effect" in cached.stderr, cached  # fmt: skip
    assert f"--replace-site --wheels /srv/wheels --micro-cache): install-host then writes its own site, with it; then run `certbot --nginx -d {NAME}` again" in cached.stderr, cached.stderr  # fmt: skip
    assert snapshot(m) == installed
    # certbot edited the site: the guide's line says what to do, and changes nothing.
    lines = recipe("docs/deploy-host.md", "https with a certificate you already have", 0, guide)
    refused = m.recipe(lines, f"{SRC}/flaskr", check=False)
    assert refused.returncode != 0 and "done" not in refused.stdout, refused
    assert "run again with --replace-site and the same options" in refused.stderr, refused
    assert "--tls-cert would not take effect" in refused.stderr, refused.stderr
    assert m.sh(f"cat {SITE}") == site and m.sh("test -e /etc/flaskr/tls || echo none") == "none"
    assert "Pebble Intermediate CA" in m.sh(f"{SERVED} | openssl x509 -noout -issuer")
    # As it says: --replace-site takes install-host's own site again, with the certificate.
    lines = recipe(
        "docs/deploy-host.md",
        "https with a certificate you already have",
        0,
        {**guide, "./scripts/install-host": "./scripts/install-host --replace-site"},
    )
    done = m.recipe(lines, f"{SRC}/flaskr")
    assert f"flaskr runs at https://{NAME}/" in done.stdout, done.stdout
    assert m.sh("stat -c '%a %U' /etc/flaskr/tls/flaskr.key") == "600 root"
    # Another name, which this certificate does not cover: refused, the site as it was.
    installed = snapshot(m)
    other_name = m.run(install_as(NAME, "--server-name", "other.example.test"), check=False)
    assert other_name.returncode == 1 and "does not cover the server name(s) other.example.test" in other_name.stderr, other_name  # fmt: skip
    assert snapshot(m) == installed
    assert_https_site(m, f"{SRC}/company/ca.pem", "Example Corp Issuing CA")
    # install-host's last check compares the certificate nginx serves with the one it
    # installed: here the file holds another one of the company's (the site stays the same,
    # so nginx is not reloaded) while nginx still serves the first.
    other, other_key = issue(ca, "other", [NAME], ocsp="http://127.0.0.1:8888")
    tls = "/etc/flaskr/tls/flaskr"
    m.sh(f"cp -p {tls}.crt /root/own.crt && cp -p {tls}.key /root/own.key && "
         f"cp {SRC}/company/{other.name} {tls}.crt && cp {SRC}/company/{other_key.name} {tls}.key")  # fmt: skip
    try:
        stale = m.run(["env", "FLASKR_HEALTH_SECONDS=2", *install_as(NAME)], check=False)
    finally:
        m.sh(f"cp -p /root/own.crt {tls}.crt && cp -p /root/own.key {tls}.key")
    assert stale.returncode != 0 and "done" not in stale.stdout, stale
    assert "nginx serves the certificate with SHA-256" in stale.stderr, stale.stderr
    # The last check also wants each name covered: a site edited here to serve another name's
    # certificate (kept, as local edits are) fails it.
    edit = (
        f"sed -i -e 's|ssl_certificate {tls}.crt;|ssl_certificate {SRC}/company/{wrong.name};|'"
        f" -e 's|ssl_certificate_key {tls}.key;|ssl_certificate_key {SRC}/company/{wrong_key.name};|'"
    )
    m.sh(f"cp -p {SITE} /root/site && {edit} {SITE} && systemctl reload nginx")
    try:
        uncovered = m.run(["env", "FLASKR_HEALTH_SECONDS=2", *install_as(NAME)], check=False)
    finally:
        m.sh(f"cp -p /root/site {SITE} && systemctl reload nginx")
    assert uncovered.returncode != 0 and "done" not in uncovered.stdout, uncovered
    assert f"nginx serves a certificate that does not cover {NAME}" in uncovered.stderr, uncovered
    # This certificate names an OCSP responder: nginx fetches its answer (after the first
    # handshake asks for it) and staples it, verified, to later handshakes.
    answers = [""]

    def stapled_answer() -> str | None:
        answers[0] = s_client(m, "-servername", NAME, "-status", "-CAfile", f"{SRC}/company/ca.pem")
        return answers[0] if "OCSP Response Status: successful" in answers[0] else None

    stapled = until(stapled_answer, 30, lambda: f"an OCSP answer stapled: {answers[0]}", step=0.5)
    assert "Cert Status: good" in stapled, stapled
    # A later run without the options keeps https: the copy in /etc/flaskr/tls is the choice.
    again = m.run(install_as(NAME), timeout=300)
    assert "nothing changed" in again.stdout and f"runs at https://{NAME}/" in again.stdout
    # --no-tls: http again.
    off = m.run(install_as(NAME, "--no-tls"), timeout=300)
    assert f"runs at http://{NAME}/" in off.stdout, off.stdout
    assert "warning: https is off" in off.stdout and "HSTS header" in off.stdout, off.stdout
    assert m.sh("test -e /etc/flaskr/tls || echo gone") == "gone"
