"""Stage 2 of the host suite (see __init__.py): `systemctl reload` under load drops no
request; a reload onto code that cannot serve keeps the old code serving."""

from __future__ import annotations

import pytest

from tests.e2e.host.helpers import Host, flaskr_pids, wait_workers_replaced
from toolkit.wait import until


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
