"""Stage 1 of the host suite (see __init__.py): the guide's first install on a bare
Debian, then what it installed: refusals, the whole flow through nginx, the socket, the
sandbox."""

from __future__ import annotations

import re
import subprocess
import time

from tests.e2e.host.helpers import (
    INSTALL,
    MAX_EXPOSURE,
    SOCKET,
    Host,
    exposure,
    flaskr_pids,
    snapshot,
)
from toolkit.machines import copy_checkout
from toolkit.recipes import recipe
from toolkit.wait import until


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


def test_the_mail_sender_is_enabled_and_waits_for_its_settings(host: Host) -> None:
    """flaskr-mail.service is installed and enabled; without /etc/flaskr/mail.env it does not
    start (no restart loop), and with it, it runs and keeps running, retrying a server that
    does not answer."""
    m = host.machine
    unit = "/etc/systemd/system/flaskr-mail.service"
    verify = m.run(["systemd-analyze", "verify", unit])
    assert verify.stdout == "" and verify.stderr == "", verify.stderr
    assert m.run(["systemctl", "is-enabled", "flaskr-mail"]).stdout.strip() == "enabled"
    assert m.sh("stat -c '%a %U' /etc/flaskr/mail_password") == "600 root"
    state = m.show("flaskr-mail", "ActiveState", "ConditionResult", "NRestarts")
    assert state == {"ActiveState": "inactive", "ConditionResult": "no", "NRestarts": "0"}
    settings = (
        "FLASKR_MAIL_URL=smtp://127.0.0.1:9",  # nothing listens there: the sender retries
        "FLASKR_MAIL_FROM=blog@flaskr.test",
        "FLASKR_SITE_URL=http://localhost",
    )
    m.run(["install", "-m", "0600", "/dev/null", "/etc/flaskr/mail.env"])
    m.run(["sh", "-c", "printf '%s\\n' \"$@\" >/etc/flaskr/mail.env", "sh", *settings])
    try:
        m.run(["systemctl", "restart", "flaskr-mail"])
        until(
            lambda: m.show("flaskr-mail", "SubState")["SubState"] == "running",
            30,
            "the mail sender to run",
        )
        stays_up = time.monotonic() + 3  # not a start that exits at once, then restarts
        while time.monotonic() < stays_up:
            state = m.show("flaskr-mail", "SubState", "NRestarts")
            assert state == {"SubState": "running", "NRestarts": "0"}, state
            time.sleep(0.5)
        score = exposure(m.run(["systemd-analyze", "security", "--no-pager", "flaskr-mail"]).stdout)
        print(f"\nflaskr-mail.service exposure: {score}")
        # flaskr.service's sandbox with the network open, as an SMTP server is on it: 1.1
        # measured on Debian 12's systemd 252 (flaskr.service's 0.3 has no network at all).
        assert score <= 1.2
    finally:
        m.sh("rm -f /etc/flaskr/mail.env && systemctl stop flaskr-mail")
