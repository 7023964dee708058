"""gunicorn's sync workers read each request themselves: on an address beyond loopback with
nobody in front, a few clients sending one byte at a time hold all of them. scripts/serve and
scripts/container refuse such an address before they set anything up or start anything, unless
the operator says a proxy is in front (--behind-proxy, FLASKR_BEHIND_PROXY=1). No server is
started here: the container engine is a stand-in that records its arguments."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BEYOND = ["0.0.0.0:8000", "192.0.2.1:8000", "[::]:8000", "blog.example.org:80", "0.0.0.0"]
# Names that begin like a loopback address: gunicorn would look them up in the DNS.
LOOKALIKES = ["127.0.0.1.evil.invalid:8799", "127.0.0.1.nip.io:8799", "127.0.0.1.:8000",
              "127.0.0.256:8000", "127.1:8000"]  # fmt: skip


def run(argv: list[str], cwd: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLASKR_")}
    return subprocess.run(  # noqa: S603 - this checkout's scripts
        argv,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


@pytest.fixture
def serve(tmp_path: Path) -> Path:
    """scripts/serve in a checkout of its own without a .venv, whose Python cannot make one:
    past the address check it stops at once, before gunicorn ("setup: creating .venv")."""
    (tmp_path / "scripts" / "lib").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "serve", tmp_path / "scripts" / "serve")
    shutil.copy2(ROOT / "scripts" / "lib" / "venv.sh", tmp_path / "scripts" / "lib" / "venv.sh")
    return tmp_path / "scripts" / "serve"


@pytest.mark.parametrize("bind", BEYOND + LOOKALIKES)
def test_serve_refuses_an_address_beyond_loopback(serve: Path, bind: str) -> None:
    instance = serve.parent.parent / "instance"
    for setting in ({}, {"FLASKR_BEHIND_PROXY": "0"}):
        done = run([str(serve)], FLASKR_BIND=bind, FLASKR_INSTANCE_PATH=str(instance),
                   PYTHON="false", **setting)  # fmt: skip
        assert done.returncode == 2, done
        assert f"refusing to listen on {bind}, beyond this machine" in done.stderr
        assert "put nginx in front" in done.stderr and "--behind-proxy" in done.stderr
        assert done.stdout == "" and not instance.exists()  # nothing set up, nothing started


@pytest.mark.parametrize(
    "bind", ["127.0.0.1:8000", "127.10.20.30:8000", "127.0.0.1", "localhost:8000", "[::1]:8000",
             "unix:x.sock"],
)  # fmt: skip
def test_serve_goes_on_for_loopback_or_behind_a_proxy(serve: Path, bind: str) -> None:
    said = [([], {}), (["--behind-proxy"], {}), ([], {"FLASKR_BEHIND_PROXY": "1"})]
    for args, setting in said:
        done = run([str(serve), *args], FLASKR_BIND=bind, PYTHON="false", **setting)
        assert done.returncode != 0 and "setup: creating .venv" in done.stdout, done
        assert "refusing" not in done.stderr
    for args, setting in said[1:]:
        done = run([str(serve), *args], FLASKR_BIND="0.0.0.0:8000", PYTHON="false", **setting)
        assert "setup: creating .venv" in done.stdout and "refusing" not in done.stderr, done
    unknown = run([str(serve), "--behind-nginx"], PYTHON="false")
    assert unknown.returncode == 2 and "unknown argument '--behind-nginx'" in unknown.stderr


@pytest.fixture
def container(tmp_path: Path):
    """scripts/container with a stand-in podman on PATH that records its arguments and fails."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "podman.log"
    (bin_dir / "podman").write_text(f'#!/bin/sh\necho "$*" >>{log}\nexit 1\n')
    (bin_dir / "podman").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FLASKR_ENGINE": "podman",
        "FLASKR_PODMAN_CONF": "system",
        "FLASKR_CONTAINER_SECRET": str(tmp_path / "secret" / "key"),
    }

    def script(
        *args: str, cwd: str | None = None, **settings: str
    ) -> tuple[subprocess.CompletedProcess[str], str]:
        log.unlink(missing_ok=True)
        done = run([str(ROOT / "scripts" / "container"), *args], cwd, **env, **settings)
        return done, log.read_text() if log.exists() else ""

    return script


@pytest.mark.parametrize(
    ("args", "publish", "where"),
    [
        ((), "0.0.0.0:8000", "0.0.0.0:8000"),
        ((), "192.0.2.1:8080", "192.0.2.1:8080"),
        (("-p", "8080:8000"), "127.0.0.1:8000", "every address (-p 8080:8000)"),
        (("--publish", "8080"), "127.0.0.1:8000", "every address (--publish 8080)"),
        (("--publish=0.0.0.0:80:8000",), "127.0.0.1:8000", "0.0.0.0:80:8000"),
        (("-P",), "127.0.0.1:8000", "every address (-P)"),
        (("--network", "host"), "127.0.0.1:8000", "the host's network"),
        # Short options in a cluster, as Docker's tutorials write them (docker run -dp ...).
        (("-dp", "8000:8000"), "127.0.0.1:8000", "every address (-p 8000:8000)"),
        (("-tp", "0.0.0.0:8000:8000"), "127.0.0.1:8000", "0.0.0.0:8000:8000"),
        (("-itp", "8080:8000"), "127.0.0.1:8000", "every address (-p 8080:8000)"),
        (("-dp8000:8000",), "127.0.0.1:8000", "every address (-p 8000:8000)"),
        (("-dp=0.0.0.0:80:8000",), "127.0.0.1:8000", "0.0.0.0:80:8000"),
        (("-dP",), "127.0.0.1:8000", "every address (-dP)"),
        (("-Pit",), "127.0.0.1:8000", "every address (-Pit)"),
        (("--publish-all=1",), "127.0.0.1:8000", "every address (--publish-all=1)"),
        # Another container's network, whose published ports are this one's too; a pod's.
        (("--network", "container:db"), "127.0.0.1:8000", "the network of another container"),
        (("--net=container:db",), "127.0.0.1:8000", "the network of another container"),
        (("--network", "name=host,alias=web"), "127.0.0.1:8000", "the host's network"),
        (("--network=ns:/proc/1/ns/net",), "127.0.0.1:8000", "the network namespace"),
        (("--network", "pasta:-t,8000"), "127.0.0.1:8000", "the ports pasta's own options"),
        (("--pod", "web"), "127.0.0.1:8000", "the network of a pod (--pod web)"),
        (("--pod=web",), "127.0.0.1:8000", "the network of a pod (--pod=web)"),
        (("--pod-id-file", "/run/web.pod-id"), "127.0.0.1:8000", "the network of a pod"),
        # Names that begin like a loopback address.
        ((), "127.0.0.1.evil.invalid:8000", "127.0.0.1.evil.invalid:8000"),
        (("-p", "127.0.0.1.nip.io:80:8000"), "127.0.0.1:8000", "127.0.0.1.nip.io:80:8000"),
    ],
)
def test_container_run_refuses_to_publish_beyond_loopback(container, args, publish, where):
    for command in ("run", "upgrade", "rollback"):
        done, engine = container(command, *args, FLASKR_PUBLISH=publish)
        assert done.returncode == 1, done
        assert engine == ""  # the engine was never asked anything: nothing built or replaced
        assert f"refusing to publish port 8000 on {where}" in done.stderr
        assert ", beyond this machine, with nobody in front" in done.stderr
        assert "Put nginx in front" in done.stderr and "--behind-proxy" in done.stderr


def test_container_run_publishes_beyond_loopback_when_told_a_proxy_is_in_front(container):
    for args, setting in ((["--behind-proxy"], {}), ([], {"FLASKR_BEHIND_PROXY": "1"})):
        done, engine = container("run", *args, "-e", "X=1", FLASKR_PUBLISH="0.0.0.0:8000",
                                 **setting)  # fmt: skip
        assert "refusing" not in done.stderr, done.stderr
        (run_line,) = [line for line in engine.splitlines() if line.startswith("create ")]
        assert "--publish 0.0.0.0:8000:8000" in run_line and "-e X=1" in run_line
        assert "--behind-proxy" not in engine
    done, engine = container("run", FLASKR_PUBLISH="127.0.0.1:8000")
    assert "refusing" not in done.stderr and "--publish 127.0.0.1:8000:8000" in engine


@pytest.mark.parametrize(
    "args",
    [
        ("--net", "host"),
        ("--net=host",),
        ("--network=host",),
        ("--network", "host"),
    ],
)
def test_container_run_refuses_the_host_network_in_every_spelling(container, args):
    done, engine = container("run", *args)
    assert done.returncode == 1 and engine == "", done
    assert "refusing to publish port 8000 on the host's network, beyond" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        # Letters before p that take no value; p's value on loopback.
        ("-dp", "127.0.0.1:8000:8000"),
        ("-itp127.0.0.1:8080:8000",),
        ("-p=127.0.0.1::8000/tcp",),
        ("-p", "[::1]:8080:8000"),
        # A letter that takes a value takes the rest of the cluster: -e PORT=8000, -v P:/p.
        ("-ePORT=8000",),
        ("-vP:/p",),
        ("--network", "flaskr-net"),
        ("--network=pasta",),
        ("--publish-all=false",),
    ],
)
def test_container_run_reads_clusters_and_networks_as_the_engine_does(container, args):
    done, engine = container("run", *args)
    assert "refusing" not in done.stderr, done.stderr
    (run_line,) = [line for line in engine.splitlines() if line.startswith("create ")]
    assert run_line.endswith(" ".join(args) + " flaskr:latest"), run_line


@pytest.mark.parametrize(
    "args", [("-dp", "8000:8000"), ("-dP",), ("--network", "host"), ("--pod", "web")]
)
def test_container_run_goes_on_behind_a_proxy(container, args):
    for said, setting in ((["--behind-proxy"], {}), ([], {"FLASKR_BEHIND_PROXY": "1"})):
        done, engine = container("run", *said, *args, **setting)
        assert "refusing" not in done.stderr, done.stderr
        (run_line,) = [line for line in engine.splitlines() if line.startswith("create ")]
        assert run_line.endswith(" ".join(args) + " flaskr:latest"), run_line


def test_container_restore_passes_the_unpacked_cap_on_as_a_number_only(container, tmp_path):
    """The cap reaches `flask restore` in the one-off container as an argument; anything but a
    number is refused before the engine is asked anything."""
    backup = tmp_path / "flaskr-x.sqlite.gz"
    backup.write_bytes(gzip.compress(b"SQLite format 3\0" + bytes(100)))
    # The engine's last call is the one-off container, its sh -c script over several lines.
    done, engine = container("restore", str(backup), "--max-unpacked-mb", "20480")
    assert '${2:+--max-unpacked-mb "$2"}' in engine
    assert engine.rstrip().endswith(f" sh sqlite.gz 20480 {backup}"), engine
    done, engine = container("restore", str(backup))
    assert engine.rstrip().endswith(f" sh sqlite.gz  {backup}"), engine
    for bad in (["--max-unpacked-mb", "1;id"], ["--max-unpacked-mb"], ["--force"], ["-1"]):
        done, engine = container("restore", str(backup), *bad)
        assert done.returncode == 1 and "usage: scripts/container restore FILE" in done.stderr
        assert engine == ""


def test_container_restore_checks_the_file_before_it_stops_anything(container, tmp_path):
    """A file that is not a backup of this container's database is refused before the
    container is stopped, naming the file as given (each once stopped, refused, started)."""
    cases = {
        "bad.sqlite.gz": (os.urandom(4096), "is not a backup of flaskr's SQLite database"),
        "-rf.sqlite.gz": (gzip.compress(b"not sqlite" * 10), "is not a backup of flaskr's"),
        "real.pgdump": (b"PGDMP" + bytes(64), "is a PostgreSQL dump (.pgdump"),
        "notes.txt": (b"x", "is not a flaskr backup (their names end in"),
    }
    for name, (content, said) in cases.items():
        (tmp_path / name).write_bytes(content)
        done, engine = container("restore", name, cwd=str(tmp_path))
        assert done.returncode == 1, done
        assert f"container: {name} {said}" in done.stderr, done.stderr
        assert "stop" not in engine and " run " not in f" {engine}", engine
        assert ".incoming" not in done.stderr
    done, engine = container("restore", "./missing.sqlite.gz", cwd=str(tmp_path))
    assert done.returncode == 1 and "no backup file ./missing.sqlite.gz" in done.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--keep", "7"], "backup has no option --keep. usage: "),
        (
            ["--keep", "7"],
            "the number kept in the volume is FLASKR_BACKUP_KEEP (14), e.g. 'FLASKR_BACKUP_KEEP=7 ",
        ),
        (["/etc/hostname"], "/etc/hostname is not a folder: backup copies its file into DIR"),
        (["a", "b"], "one DIR only"),
    ],
)
def test_container_backup_refuses_options_and_a_dir_that_is_a_file(container, args, said):
    done, engine = container("backup", *args)
    assert done.returncode == 1 and said in done.stderr, done
    assert engine == "" and "mkdir" not in done.stderr
    done, engine = container("backup", FLASKR_BACKUP_KEEP="seven")
    assert done.returncode == 1 and "FLASKR_BACKUP_KEEP must be a number" in done.stderr


@pytest.mark.parametrize("command", ["run", "rollback"])
def test_container_forward_is_refused_outside_build_and_upgrade(container, command):
    done, engine = container(command, "--forward")
    assert done.returncode == 1 and engine == "", done
    assert "--forward is for 'build' and 'upgrade'" in done.stderr


def test_container_publish_on_localhost_is_127_0_0_1(container):
    done, engine = container("run", FLASKR_PUBLISH="localhost:8001")
    assert "--publish 127.0.0.1:8001:8000" in engine, (done, engine)
    done, engine = container("run", "-p", "localhost:8001:8000")
    assert done.returncode == 1 and engine == "", done
    assert "write 127.0.0.1 for localhost (-p 127.0.0.1:8001:8000)" in done.stderr


@pytest.mark.parametrize("command", ["status", "health"])
def test_container_status_and_health_of_no_container_say_so_and_fail(container, command):
    done, _ = container(command, FLASKR_CONTAINER="nosuch")
    assert done.returncode == 1, done
    assert done.stderr == "container: no container named nosuch\n", done.stderr
