"""flaskr.isolation on recorded /proc trees (tests/fixtures/isolation/<case>/), its CLI and
the operator page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flaskr import isolation
from tests.helpers import make_app

FIXTURES = Path(__file__).parent / "fixtures" / "isolation"


def case(name: str) -> str:
    return str(FIXTURES / name)


def with_isolation(app: Flask) -> Flask:
    """Register the module unless create_app already does."""
    if "isolation" not in app.blueprints:
        isolation.init_app(app)
    return app


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# -- the sections on recorded trees ----------------------------------------------------------


def test_host() -> None:
    report = isolation.collect(case("host"), environ={})
    procs, box = report["processes"], report["container"]
    assert procs["pid_namespace"] == "host"
    assert procs["pid1"].startswith("/process_api")
    assert procs["pid1_ns_pid"] is None and "pid1_ns_pid" in procs["reasons"]
    assert procs["count"] == 5
    assert procs["visible"][1] == {"pid": 2, "uid": 0, "user": "root", "command": "[kthreadd]"}
    # The VM keeps a stray /.dockerenv on ext4: listed, but not taken as evidence.
    assert box["markers"] == ["/.dockerenv"]
    assert box["evidence"] == [] and box["evidence_discounted"]
    assert box["in_container"] is False
    assert box["runtime"] is None and box["reasons"]["runtime"].startswith("no runtime")
    assert box["cgroup_version"] == "hybrid"
    assert box["cgroup_path"] == "/process_api/ee924c43c7f60e4572e0bfd7ba16f3aa"
    assert box["pid1_container_env"] is None
    assert report["supervisor"]["systemd"] is False
    priv = report["privileges"]
    assert priv["user"] == "root" and priv["euid"] == 0
    assert "CAP_SYS_RESOURCE" not in priv["capabilities"] and len(priv["capabilities"]) == 40
    assert priv["no_new_privs"] is False and priv["seccomp"] == "disabled"
    assert priv["umask"] == "0022" and priv["read_only_root"] is False
    json.dumps(report)


def test_unshare() -> None:
    report = isolation.collect(case("unshare"), environ={})
    procs, box = report["processes"], report["container"]
    # Its own /proc shows one pid in NSpid: only the namespace inode tells.
    assert procs["nspid"] == [1]
    assert procs["pid_namespace"] == "own"
    assert "not the initial" in procs["evidence"]
    assert procs["count"] == 1
    assert box["in_container"] is True and box["evidence"] == ["own PID namespace"]
    assert box["runtime"] is None
    assert report["supervisor"]["parent"] is None
    assert dict(isolation.summary_rows(report))["parent process"] == (
        "unknown (PPid 0: the first process of its PID namespace)"
    )


def test_docker_cgroup_v1() -> None:
    report = isolation.collect(case("docker-v1"), environ={})
    procs, box = report["processes"], report["container"]
    assert procs["pid_namespace"] == "own"
    assert procs["pid1"].startswith("/opt/venv/bin/python3 /opt/venv/bin/gunicorn")
    assert [p["pid"] for p in procs["visible"]] == [1, 7, 8, 9, 23]
    assert box["in_container"] is True
    assert box["runtime"] == "docker" and box["runtime_source"].startswith("cgroup path /docker/")
    assert box["cgroup_version"] == "v1"
    assert box["cgroups"]["cpuacct"] == box["cgroups"]["cpu"]
    assert box["overlay_root"] is True and "marker /.dockerenv" in box["evidence"]
    assert report["supervisor"]["systemd"] is False
    assert report["supervisor"]["unit"] is None
    assert report["supervisor"]["parent"]["pid"] == 1
    caps = report["privileges"]["capabilities"]
    assert caps is not None and len(caps) == 14 and "CAP_NET_RAW" in caps
    assert report["privileges"]["seccomp"] == "filter"


def test_podman_cgroup_v2() -> None:
    report = isolation.collect(case("podman-v2"), environ={})
    box, priv = report["container"], report["privileges"]
    assert box["containerenv"]["engine"] == "podman-4.3.1"
    assert box["pid1_container_env"] == "podman"
    assert box["runtime"] == "podman" and box["runtime_source"] == "PID 1's container variable"
    assert box["cgroup_version"] == "v2" and box["cgroup_path"] == "/"
    assert priv["user"] == "app" and priv["groups"] == [1000]
    assert priv["capabilities"] == [] and priv["no_new_privs"] is True
    assert priv["read_only_root"] is True


def test_systemd_service() -> None:
    report = isolation.collect(case("systemd-service"), environ={"INVOCATION_ID": "0f1e"})
    sup = report["supervisor"]
    assert sup["systemd"] is True and sup["unit"] == "flaskr.service"
    assert sup["evidence"] == ["INVOCATION_ID is set", "cgroup /system.slice/flaskr.service"]
    assert sup["pid1_name"] == "systemd"
    assert sup["parent"]["command"].endswith("hello:app")
    assert report["container"]["in_container"] is False
    assert report["privileges"]["user"] == "ubuntu"
    assert report["privileges"]["gid"] == 33
    visible = report["processes"]["visible"]
    assert {"pid": 2, "uid": 0, "user": "root", "command": "[kthreadd]"} in visible
    # Without INVOCATION_ID, the cgroup alone still names the unit.
    assert isolation.supervisor(case("systemd-service"), environ={})["systemd"] is True


def test_nspawn_service() -> None:
    """Recorded from the host suite's machine: a gunicorn worker of the installed unit, under a
    real systemd in systemd-nspawn (ProtectProc=invisible, PrivateUsers=yes, no capabilities)."""
    report = isolation.collect(case("nspawn-service"), environ={"INVOCATION_ID": "cf4e"})
    procs, box, sup, priv = (
        report[k] for k in ("processes", "container", "supervisor", "privileges")
    )
    # The machine is a container on the CI host: its PID namespace is not the initial one.
    assert procs["pid_namespace"] == "own"
    # ProtectProc=invisible: only the service user's processes are listed, PID 1 is hidden.
    assert procs["proc_hidepid"] == "hidepid=invisible"
    assert procs["count"] == 4 and {p["user"] for p in procs["visible"]} == {"flaskr"}
    assert all(p["command"].endswith("hello:app") for p in procs["visible"])
    assert procs["pid1"] is None
    assert procs["reasons"]["pid1"] == "hidden: /proc is mounted with hidepid=invisible"
    assert box["in_container"] is True and box["runtime"] == "systemd-nspawn"
    assert box["runtime_source"] == "/run/systemd/container"
    assert sup["systemd"] is True and sup["unit"] == "flaskr.service"
    assert sup["parent"]["command"].endswith("hello:app")
    assert priv["user"] == "flaskr" and priv["euid"] != 0
    assert priv["capabilities"] == [] and priv["no_new_privs"] is True
    assert priv["seccomp"] == "filter" and priv["read_only_root"] is True
    rows = dict(isolation.summary_rows(report))
    assert rows["processes visible"] == "4 (/proc hidepid=invisible: other users' are hidden)"
    assert rows["PID 1"] == "unknown (hidden: /proc is mounted with hidepid=invisible)"


def test_parent_outside_the_namespace(tmp_path: Path) -> None:
    """PPid 0 for a process that is not PID 1 of its namespace: nsenter or docker exec."""
    write(tmp_path, "proc/self/status", "Pid:\t297\nPPid:\t0\nNSpid:\t297\n")
    reason = isolation.supervisor(str(tmp_path), environ={})["reasons"]["parent"]
    assert reason.startswith("PPid 0: its parent is outside its PID namespace (pid 297 there")
    write(tmp_path, "proc/self/status", "Pid:\t12\nPPid:\t0\n")
    reason = isolation.supervisor(str(tmp_path), environ={})["reasons"]["parent"]
    assert "(pid 12 there" in reason
    write(tmp_path, "proc/self/status", "PPid:\t0\n")
    reason = isolation.supervisor(str(tmp_path), environ={})["reasons"]["parent"]
    assert reason == "PPid 0: the first process of its PID namespace"


def test_not_linux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    report = isolation.collect(str(tmp_path), environ={})
    procs, box, priv = report["processes"], report["container"], report["privileges"]
    assert procs["pid_namespace"] is None
    assert "not Linux" in procs["reasons"]["pid_namespace"]
    assert procs["count"] is None and "not Linux" in procs["reasons"]["visible"]
    assert procs["pid1"] is None and procs["nspid"] is None
    assert box["in_container"] is None
    assert box["reasons"]["in_container"] == "no evidence either way"
    assert box["cgroup_path"] is None and box["root_fstype"] is None
    assert report["supervisor"]["systemd"] is None
    assert priv["uid"] == os.getuid() and priv["capabilities"] is None
    assert "not Linux" in priv["reasons"]["capabilities"]
    assert priv["read_only_root"] is False  # from statvfs
    rows = dict(isolation.summary_rows(report))
    assert rows["PID namespace"].startswith("unknown (cannot read /proc/self/ns/pid")
    assert rows["supervisor"].startswith("unknown")
    assert rows["user"].endswith(f"(uid {os.getuid()})")


def test_no_ids_no_statvfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows: neither /proc nor os.geteuid nor os.statvfs."""
    monkeypatch.delattr(os, "geteuid")
    monkeypatch.delattr(os, "statvfs")
    priv = isolation.privileges(str(tmp_path))
    assert priv["uid"] is None and priv["read_only_root"] is None
    assert priv["reasons"]["read_only_root"].startswith("cannot read /proc/self/mountinfo")
    rows = dict(isolation.summary_rows({"privileges": priv}))
    assert rows["user"].startswith("unknown") and rows["read-only root"].startswith("unknown")


def test_odd_files(tmp_path: Path) -> None:
    """Old kernels, truncated files, unknown users and capabilities."""
    write(tmp_path, "proc/self/status", "Name:\tx\nno colon here\nUid:\t5\t5\t5\t5\nGid:\t5\n")
    write(tmp_path, "proc/self/cgroup", "garbage\n3:memory:/\n")
    write(tmp_path, "proc/self/mountinfo", "short line\n1 0 8:1 / /other rw - ext4 /dev/sda1 rw\n")
    write(tmp_path, "proc/1/environ", "PATH=/bin\0container=\0")
    write(tmp_path, "proc/7/status", "Name:\tnouid\n")
    write(tmp_path, "proc/7/cmdline", "")
    write(tmp_path, "proc/8/status", "Name:\tgone\n")  # no cmdline: it exited
    write(tmp_path, "etc/passwd", "# comment\nbad line\n")
    (tmp_path / "proc/self/ns").mkdir()
    os.symlink("pid:[notanumber]", tmp_path / "proc/self/ns/pid")
    report = isolation.collect(str(tmp_path), environ={})
    procs, box, priv = report["processes"], report["container"], report["privileges"]
    assert procs["pid_namespace"] is None
    assert procs["reasons"]["pid_namespace"] == "unexpected ns link 'pid:[notanumber]'"
    assert procs["reasons"]["nspid"].startswith("no NSpid")
    assert procs["visible"] == [{"pid": 7, "uid": None, "user": None, "command": "[nouid]"}]
    assert procs["reasons"]["pid1"] == "cannot read /proc/1/cmdline: No such file or directory"
    assert box["cgroup_version"] == "v1" and box["cgroup_path"] == "/"
    assert box["root_fstype"] is None and box["reasons"]["root_fstype"].startswith("no mount at /")
    assert box["pid1_container_env"] is None
    assert priv["uid"] is None and priv["reasons"]["uid"] == "not in /proc/self/status"
    assert priv["read_only_root"] is not None  # statvfs of the folder
    supervisor = isolation.supervisor(str(tmp_path), environ={})
    assert supervisor["systemd"] is False and supervisor["unit"] is None
    write(tmp_path, "proc/self/status", "Uid:\t4242\t4242\t0\t0\nGid:\t0\t0\t0\t0\nSeccomp:\t9\n")
    priv = isolation.privileges(str(tmp_path))
    assert priv["user"] is None and priv["reasons"]["user"] == "uid 4242 is not in /etc/passwd"
    assert priv["seccomp"] == "9"
    assert isolation.read_cmdline(str(tmp_path), "99") is None


def test_helpers() -> None:
    assert isolation.ns_inode(None) is None
    assert isolation.ns_inode("pid") is None
    assert isolation.ns_inode("pid:[12]") == 12
    assert isolation.capability_names(1 << 41 | 1) == ["CAP_CHOWN", "CAP_41"]
    assert isolation.cgroup_path({}) is None
    assert isolation.cgroup_version({"": "/"}) == "v2"
    assert isolation.parse_containerenv('engine="podman-4"\nnoise\n') == {"engine": "podman-4"}
    mounts = isolation.parse_mountinfo("1 0 0:1 / /proc rw - proc proc\n")
    assert mounts[0]["super_options"] == ""
    assert isolation.describe_capabilities(None) == "unknown"
    assert isolation.describe_capabilities(isolation.CAPABILITIES) == "all 41"


def test_nested_nspid(tmp_path: Path) -> None:
    """/proc mounted outside the namespace (unshare --pid --fork without --mount-proc)."""
    write(tmp_path, "proc/self/status", "NSpid:\t7411\t2\n")
    namespace = isolation.pid_namespace(str(tmp_path))
    assert namespace["pid_namespace"] == "own" and namespace["nspid"] == [7411, 2]
    assert namespace["evidence"].startswith("NSpid lists 2 pids")
    assert namespace["reasons"]["ns_pid"].startswith("cannot read /proc/self/ns/pid")


def test_format_empty_report() -> None:
    text = isolation.format_report({})
    assert "Processes visible" not in text and "App packages" not in text
    assert "processes visible       unknown" in text


def test_proc_hidepid(tmp_path: Path) -> None:
    write(tmp_path, "proc/self/mountinfo", "5 1 0:5 / /proc rw - proc proc rw,hidepid=invisible\n")
    assert isolation.processes(str(tmp_path))["proc_hidepid"] == "hidepid=invisible"
    write(tmp_path, "proc/self/mountinfo", "5 1 0:5 / /proc rw - proc proc rw\n")
    assert isolation.processes(str(tmp_path))["proc_hidepid"] is None


def test_runtime_markers(tmp_path: Path) -> None:
    """A marker against a host PID namespace gives no verdict and no runtime."""
    write(tmp_path, "run/systemd/container", "systemd-nspawn\n")
    (tmp_path / "proc/self/ns").mkdir(parents=True)
    os.symlink(f"pid:[{isolation.INIT_PID_NS_INODE}]", tmp_path / "proc/self/ns/pid")
    box = isolation.container(str(tmp_path))
    assert box["markers"] == ["/run/systemd/container"]
    assert box["in_container"] is None and box["reasons"]["in_container"] == "conflicting evidence"
    assert box["runtime"] is None
    assert box["reasons"]["runtime"].startswith("/run/systemd/container suggests systemd-nspawn")
    # A /.dockerenv alone (no mountinfo to discount it) names docker.
    (tmp_path / "proc/self/ns/pid").unlink()
    (tmp_path / "run/systemd/container").unlink()
    write(tmp_path, ".dockerenv", "")
    box = isolation.container(str(tmp_path))
    assert box["in_container"] is True and box["runtime"] == "docker"
    assert box["runtime_source"] == "/.dockerenv"
    rows = dict(isolation.summary_rows({"container": box}))
    assert rows["runtime"] == "docker (from /.dockerenv)"
    assert rows["in a container"] == "yes"


def test_dependencies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# comment\n\nflask==3.1.3 \\\n    --hash=sha256:ab\n"
        "Psycopg[binary]==3.3.9 ; python_version >= '3.11'\nno-such-package-here==1\n"
    )
    deps = isolation.dependencies(requirements)
    assert list(deps["packages"]) == ["flask", "psycopg", "no-such-package-here"]
    assert deps["packages"]["flask"] and deps["packages"]["no-such-package-here"] is None
    assert deps["reasons"]["packages.no-such-package-here"] == "not installed"
    assert deps["packages_source"] == str(requirements)
    deps = isolation.dependencies(tmp_path / "missing.txt")
    assert list(deps["packages"]) == isolation.MAIN_PACKAGES
    assert deps["in_venv"] == (sys.prefix != sys.base_prefix)
    monkeypatch.setenv("PATH", str(tmp_path))
    deps = isolation.dependencies()
    assert deps["on_path"]["python"] is None and deps["on_path"]["pip"] is None
    rows = dict(isolation.summary_rows({"dependencies": deps}))
    assert rows["python on PATH"] == "not found"
    assert rows["pip on PATH"] == "not found"
    monkeypatch.setattr(sys, "executable", "")
    assert isolation.dependencies()["executable_realpath"] is None


# -- presenting and the CLI ------------------------------------------------------------------


def save(tmp_path: Path, name: str, report: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(report))
    return str(path)


def test_format_report_limits_processes() -> None:
    report = isolation.collect(case("systemd-service"), environ={})
    text = isolation.format_report(report, process_limit=2)
    assert "supervisor              systemd (flaskr.service)" in text
    assert "... and 3 more (--json lists them all)" in text
    assert "App packages:" in text
    assert "…" in isolation.format_report(isolation.collect(case("host")))


def test_cli_report(tmp_path: Path) -> None:
    runner = with_isolation(make_app(tmp_path)).test_cli_runner()
    result = runner.invoke(args=["isolation"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Isolation report for pid")
    assert "PID namespace" in result.output
    result = runner.invoke(args=["isolation", "--json"])
    report = json.loads(result.output)
    assert set(report) >= {"platform", "hostname", "collected_at", "dependencies", "privileges"}
    result = runner.invoke(args=["isolation", "--json", "--no-commands"])
    visible = json.loads(result.output)["processes"]["visible"]
    assert {p["pid"] for p in visible if p["command"]} <= {1, os.getpid()}


def test_without_commands() -> None:
    report = isolation.without_commands(isolation.collect(case("docker-v1")))
    commands = [p["command"] for p in report["processes"]["visible"]]
    assert commands[0] and commands[1:] == [None, None, None, None]
    assert "(left out)" in isolation.format_report(report)


def test_without_commands_keeps_the_apps() -> None:
    """The e2e suites keep gunicorn's command lines, and blank the others and the parent's."""
    report = isolation.collect(case("systemd-service"), environ={})
    kept = isolation.without_commands(report, keep=lambda p: "gunicorn" in (p["command"] or ""))
    commands = {p["pid"]: p["command"] for p in kept["processes"]["visible"]}
    assert commands[1] == "/sbin/init splash" and commands[2] is None and commands[812] is None
    assert "gunicorn" in commands[1234] and "gunicorn" in commands[1240]
    assert "gunicorn" in kept["supervisor"]["parent"]["command"]
    report = isolation.without_commands(isolation.collect(case("systemd-service"), environ={}))
    assert report["supervisor"]["parent"]["command"] is None
    rows = dict(isolation.summary_rows(report))
    assert rows["parent process"] == "pid 1234 (command left out)"


def test_cli_compare(tmp_path: Path) -> None:
    runner = with_isolation(make_app(tmp_path)).test_cli_runner()
    a = save(tmp_path, "container.json", isolation.collect(case("docker-v1"), environ={}))
    b = save(tmp_path, "host.json", isolation.collect(case("systemd-service"), environ={}))
    result = runner.invoke(args=["isolation", "compare", a, b])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["container", "host"]
    marks = [line.rsplit(None, 1)[-1] for line in lines[2:]]
    assert marks == sorted(marks)  # "differs" rows come before "same" rows
    assert "differs" in marks and "same" in marks
    row = next(line for line in lines if line.startswith("in a container"))
    assert row.split()[3:] == ["yes", "no", "differs"]

    result = runner.invoke(args=["isolation", "compare", "--markdown", "--labels", "A, B", a, b])
    assert result.output.startswith("| | A | B | |\n|---|---|---|---|\n")
    assert "| supervisor | not systemd | systemd (flaskr.service) | differs |" in result.output

    result = runner.invoke(args=["isolation", "compare", "--labels", "A", a, b])
    assert result.exit_code == 2 and "two labels" in result.output


def test_cli_compare_bad_files(tmp_path: Path) -> None:
    runner = with_isolation(make_app(tmp_path)).test_cli_runner()
    good = save(tmp_path, "good.json", isolation.collect(case("host")))
    listing = save(tmp_path, "list.json", [])  # type: ignore[arg-type]
    result = runner.invoke(args=["isolation", "compare", good, str(tmp_path / "none.json")])
    assert result.exit_code == 1 and "cannot read the report" in result.output
    result = runner.invoke(args=["isolation", "compare", good, listing])
    assert result.exit_code == 1 and "does not hold an isolation report" in result.output


def test_compare_pipes_in_markdown() -> None:
    a = {"processes": {"pid1": "sh -c 'a | b'"}}
    text = isolation.format_compare(a, {}, ("a", "b"), markdown=True)
    assert "sh -c 'a \\| b'" in text


# -- the operator page -----------------------------------------------------------------------


def page_app(tmp_path: Path, admin: str | None = "test", **config: Any) -> Flask:
    """An app whose user ``admin`` was made an admin, as `flask make-admin` does."""
    app = with_isolation(make_app(tmp_path, **config))
    if admin is not None:
        assert (
            f"{admin} is an admin."
            in app.test_cli_runner().invoke(args=["make-admin", admin]).output
        )
    return app


def login(client: Any, username: str = "test", password: str | None = None) -> None:
    client.post("/auth/login", data={"username": username, "password": password or username})


def test_page_off_by_default(tmp_path: Path) -> None:
    client = page_app(tmp_path).test_client()
    login(client)
    assert client.get("/admin/isolation").status_code == 404


@pytest.mark.parametrize("enabled", ["true", 1, "yes"])
def test_page_needs_json_true(tmp_path: Path, enabled: Any) -> None:
    client = page_app(tmp_path, ISOLATION_PAGE=enabled).test_client()
    login(client)
    assert client.get("/admin/isolation").status_code == 404


def test_page_not_for_anonymous_or_others(tmp_path: Path) -> None:
    client = page_app(tmp_path, ISOLATION_PAGE=True).test_client()
    anonymous = client.get("/admin/isolation")
    assert anonymous.status_code == 404
    login(client, "other")
    response = client.get("/admin/isolation")
    assert response.status_code == 404
    assert response.data == client.get("/admin/no-such-page").data  # as for any missing URL


def test_page_not_for_a_disabled_admin(tmp_path: Path) -> None:
    app = page_app(tmp_path, ISOLATION_PAGE=True)
    client = app.test_client()
    login(client)
    assert client.get("/admin/isolation").status_code == 200
    app.test_cli_runner().invoke(args=["disable-user", "test"])
    assert client.get("/admin/isolation").status_code == 404
    login(client)
    assert client.get("/admin/isolation").status_code == 404


def test_page_shows_only_the_apps_own_command_lines(tmp_path: Path) -> None:
    """Other processes are counted, their command lines (which can hold secrets) left out."""
    secret = subprocess.Popen(["sleep", "31.5"])  # noqa: S603, S607
    try:
        client = page_app(tmp_path, ISOLATION_PAGE=True).test_client()
        login(client)
        report = client.get("/admin/isolation.json").get_json()
        html = client.get("/admin/isolation").get_data(as_text=True)
    finally:
        secret.kill()
        secret.wait()
    visible = {p["pid"]: p["command"] for p in report["processes"]["visible"]}
    assert secret.pid in visible and visible[secret.pid] is None  # counted, not shown
    assert visible[os.getpid()] is not None  # the app's own process in full
    assert "sleep 31.5" not in html


def test_page_for_admin(tmp_path: Path) -> None:
    client = page_app(tmp_path, ISOLATION_PAGE=True).test_client()
    login(client)
    response = client.get("/admin/isolation")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert "<h2>Summary</h2>" in html and "PID namespace" in html
    assert "style=" not in html and "<script" not in html


def test_page_as_json(tmp_path: Path) -> None:
    client = page_app(tmp_path, ISOLATION_PAGE=True).test_client()
    assert client.get("/admin/isolation.json").status_code == 404
    login(client)
    report = client.get("/admin/isolation.json").get_json()
    assert report["pid"] == os.getpid()  # collected inside the process serving the request
    assert {"dependencies", "processes", "privileges"} <= report.keys()


def test_page_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FLASKR_ISOLATION_PAGE=true and an admin made with `flask make-admin`, as an operator does."""
    monkeypatch.setenv("FLASKR_ISOLATION_PAGE", "true")
    monkeypatch.setenv("FLASKR_SECRET_KEY", "x" * 16 + "0123456789abcdef")
    monkeypatch.setenv("FLASKR_DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite'}")
    from flaskr import create_app
    from flaskr.db import upgrade_schema

    app = with_isolation(create_app())
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    with app.app_context():
        upgrade_schema()
    runner = app.test_cli_runner()
    runner.invoke(args=["create-user", "test", "--password", "test-password"])
    runner.invoke(args=["make-admin", "test"])
    client = app.test_client()
    login(client, password="test-password")
    assert client.get("/admin/isolation").status_code == 200


def test_page_details(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Unknown values and empty lists render with their reasons, on a tree with nothing."""
    collect = isolation.collect
    monkeypatch.setattr(isolation, "collect", lambda: collect(str(tmp_path), environ={}))
    client = page_app(tmp_path, ISOLATION_PAGE=True).test_client()
    login(client)
    html = client.get("/admin/isolation").get_data(as_text=True)
    assert "None listed: cannot read /proc" in html
    assert "unknown (cannot read /proc/self/status" in html
