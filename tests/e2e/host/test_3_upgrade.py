"""Stage 3 of the host suite (see __init__.py): re-installs change nothing; upgrades from
newer checkouts, or taken back out when they cannot serve; the server name and the
micro-cache kept by later runs. Its last installs are from the original checkout."""

from __future__ import annotations

import re
import shutil
import uuid

from tests.e2e.host.helpers import (
    INSTALL,
    NAME,
    SITE,
    SRC,
    Host,
    flaskr_pids,
    nginx_pids,
    snapshot,
    wait_workers_replaced,
)
from toolkit.recipes import recipe
from toolkit.wait import until


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
