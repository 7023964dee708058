"""Stage 5 of the container suite (see __init__.py): the isolation report from the serving
worker and from the host beside it."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from flaskr.isolation import formatting
from toolkit import ROOT
from toolkit.containers import Engine
from toolkit.isolation_reports import is_gunicorn, isolation_out, save_report
from toolkit.ports import free_port
from toolkit.visitors import Visitor
from toolkit.wait import wait_for_http

#: The image (stage 1 builds it) is all this stage needs (tests/e2e/scenario.py): it runs
#: a container of its own. ``-k isolation`` runs stages 1 and 5 on each engine.
NEEDS = (1,)


def test_isolation_report_from_the_serving_worker_and_the_host_beside_it(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """The original write-up's claims, read by the app itself: the report collected by the
    gunicorn worker serving /admin/isolation.json sees its own PID namespace with gunicorn alone, the venv's
    python, a non-root user without capabilities; the host beside it, outside the namespace
    that hides its Python, sees its own PID namespace, many processes and python and pip."""
    name, volume = f"{engine.prefix}-iso", f"{engine.prefix}-iso-data"
    port = free_port()
    admin = f"op{uuid.uuid4().hex[:8]}"
    engine.script(
        "run", "-e", "FLASKR_ISOLATION_PAGE=true", **engine.container_settings(name, volume, port)
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz", timeout=90)
        assert Visitor(base).get("/admin/isolation.json").status_code == 404  # not for visitors
        browser = Visitor(base)
        password = f"correct horse {admin}"
        fields = {"username": admin, "password": password}
        assert browser.post_form("/auth/register", fields).status_code == 302
        # An admin by decision, made with the operator's command inside the container.
        engine.script(
            "engine", "exec", "--workdir", "/", name, "flask", "--app", "flaskr", "make-admin",
            admin,
        )  # fmt: skip
        assert browser.post_form("/auth/login", fields).status_code == 302
        # Admins need a second factor (FLASKR_REQUIRE_2FA_FOR_ADMINS, on by default).
        assert browser.get("/admin/isolation.json").status_code == 302
        browser.enrol_second_factor(password)
        answer = browser.get("/admin/isolation.json")
        assert answer.status_code == 200, answer.text[:2000]
        assert answer.headers["Cache-Control"] == "no-store"
        inside = json.loads(answer.content)
        # The same collector run with `docker exec` (`podman exec`): one more process.
        exec_report = json.loads(
            engine.script(
                "engine", "exec", "--workdir", "/", name, "python", "-m", "flaskr.isolation",
                "--json", timeout=60,
            ).stdout
        )  # fmt: skip
    finally:
        engine.remove_container(name)
    # The host beside it: this machine's own interpreter, outside the hidden-Python namespace.
    beside = json.loads(
        subprocess.run(  # noqa: S603
            [sys.executable, "-m", "flaskr.isolation", "--json", "--no-commands"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
    )

    procs, deps, priv = inside["processes"], inside["dependencies"], inside["privileges"]
    commands = [p["command"] for p in procs["visible"]]
    # Its own PID namespace, where gunicorn is PID 1 and nothing but gunicorn runs.
    assert procs["pid_namespace"] == "own", procs
    assert procs["ns_pid"] != beside["processes"]["ns_pid"]
    assert procs["pid1"].startswith("/opt/venv/bin/") and procs["pid1"].endswith("hello:app")
    assert procs["count"] == 4 and all(is_gunicorn(p) for p in procs["visible"]), commands
    assert inside["pid"] in [p["pid"] for p in procs["visible"] if p["pid"] != 1]
    assert inside["supervisor"]["systemd"] is False
    assert inside["supervisor"]["parent"]["pid"] == 1
    # python and pip are the image's venv's.
    assert deps["prefix"] == "/opt/venv" and deps["executable"].startswith("/opt/venv/bin/")
    assert deps["on_path"]["python"]["path"] == "/opt/venv/bin/python"
    assert deps["on_path"]["pip"]["path"] == "/opt/venv/bin/pip"
    # (requirements.txt also pins tzdata for Windows only: "not installed" is right for it.)
    assert all(deps["packages"][n] for n in ("flask", "gunicorn", "werkzeug")), deps["packages"]
    # Not root, no capabilities, no privilege gain, a read-only root in this engine's container.
    assert priv["euid"] == 10001 and priv["uid"] == 10001, priv
    assert priv["capabilities"] == [] and priv["no_new_privs"] is True
    assert priv["read_only_root"] is True
    box = inside["container"]
    assert box["in_container"] is True and box["runtime"] == engine.kind, box

    exec_commands = [p["command"] for p in exec_report["processes"]["visible"]]
    assert exec_report["processes"]["ns_pid"] == procs["ns_pid"]
    assert exec_report["processes"]["count"] == 5, exec_commands
    assert sorted(c for c in exec_commands if not c.endswith("hello:app")) == [
        "python -m flaskr.isolation --json"
    ]
    # Its parent, the engine's exec, is outside the container's PID namespace.
    assert "outside its PID namespace" in exec_report["supervisor"]["reasons"]["parent"]

    # The host: another PID namespace (the initial one, unless CI itself runs in a
    # container), many more processes, and python and pip on PATH, as the write-up says.
    hp, hd = beside["processes"], beside["dependencies"]
    assert hp["pid_namespace"] == "host" or hp["ns_pid"] != procs["ns_pid"], hp["evidence"]
    assert hp["count"] > 10, hp["count"]
    assert hd["on_path"]["python"] or hd["on_path"]["python3"]
    assert hd["on_path"]["pip"] or hd["on_path"]["pip3"]

    out = isolation_out(tmp_path)
    suffix = "" if engine.kind == "podman" else f"-{engine.kind}"
    kept = formatting.without_commands(inside, keep=is_gunicorn)
    save_report(out, f"container{suffix}.json", kept)
    save_report(out, f"host-beside-container{suffix}.json", beside)
