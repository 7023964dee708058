"""Stage 6 of the host suite (see __init__.py): the isolation report from the service and
from a root shell on the same machine."""

from __future__ import annotations

import json
import os
import shlex
import uuid
from pathlib import Path

from flaskr.isolation import formatting
from tests.e2e.host.helpers import Host
from toolkit.isolation_reports import is_gunicorn, isolation_out, save_report

#: Turns the operator page on for the installed service, for one test; removed afterwards.
DROP_IN = "/etc/systemd/system/flaskr.service.d/isolation.conf"

#: The machine as stage 1 leaves it is all this stage needs (tests/e2e/scenario.py): the
#: installed service, with its default names. ``-k isolation`` runs stages 1 and 6.
NEEDS = (1,)


def test_isolation_report_from_the_service_and_the_server_beside_it(
    host: Host, tmp_path: Path
) -> None:
    """The report collected by the gunicorn worker serving /admin/isolation.json through nginx,
    with the page enabled by a drop-in, and the report of a root shell on the same machine
    (the original write-up's "connect to your server"). Before the https stage: it asks with
    the default names, which the site answers no more there."""
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
