"""Stage 1 of the container suite (see __init__.py): the image built and the site run
without Python on the host; what runs inside, as whom, with which key; the HEALTHCHECK."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.e2e.container.helpers import Post, Site, check_post_readable
from toolkit.containers import SCRIPT, Engine, terminal_session
from toolkit.wait import until


def test_build_and_run_need_no_python_on_the_host(engine: Engine, site: Site) -> None:
    """The image was built and the container started inside the namespace below, where no
    python or pip runs: the container path needs none on the host."""
    assert engine.ns.folders and engine.ns.files, "found no Python on the host to hide"
    probe = engine.ns.argv(
        [
            "sh",
            "-c",
            "export PATH=$PATH:/usr/local/bin:/usr/bin:/bin:/root/.pyenv/shims; "
            "for p in python python3 pip pip3 "
            + " ".join(Path(f).name for f in engine.ns.files)
            + '; do if "$p" --version >/dev/null 2>&1; then echo "$p runs"; fi; done; '
            'for d in "$@"; do ls -A "$d"; done',
            "sh",
            *engine.ns.folders,
        ]
    )
    seen = subprocess.run(probe, capture_output=True, text=True, check=True, timeout=30)  # noqa: S603
    assert seen.stdout.strip() == "", seen.stdout
    assert site.run_to_200 < 60
    # Every build is labelled, so that pruning finds what it leaves untagged (only upgrade's was).
    labels = engine.cli("image", "inspect", "--format", "{{json .Config.Labels}}", engine.image)
    assert json.loads(labels).get("org.flaskr.built-by") == "scripts-container", labels


def test_a_person_posts_with_an_image_and_tags(site: Site, post: Post) -> None:
    check_post_readable(site, post)
    # The author is logged in and sees the post as theirs.
    page = post.browser.get(f"/{post.id}")
    assert post.username in page.text
    assert f"/{post.id}/update" in page.text


def test_ps_aux_inside_lists_gunicorn_and_its_three_workers(engine: Engine, site: Site) -> None:
    out = engine.exec(site.name, "ps", "aux").stdout
    rows = out.strip().splitlines()[1:]
    commands = [row.split(None, 10)[10] for row in rows]
    gunicorn = [c for c in commands if "gunicorn" in c and "hello:app" in c]
    assert len(gunicorn) == 4, out
    assert [c for c in commands if c not in gunicorn] == ["ps aux"], out
    # gunicorn is PID 1 and the parent of exactly three workers; ps came from the engine's exec.
    tree = engine.exec(site.name, "ps", "-eo", "pid=,ppid=,args=").stdout
    procs = [row.split(None, 2) for row in tree.strip().splitlines()]
    by_parent = sorted((int(ppid), args) for pid, ppid, args in procs if int(pid) != 1)
    assert [args for pid, ppid, args in procs if pid == "1"][0].endswith("hello:app"), tree
    assert [ppid for ppid, _ in by_parent] == [0, 1, 1, 1], tree
    assert all("gunicorn" in args for ppid, args in by_parent if ppid == 1), tree


def test_docker_exec_it_sh_then_ps_aux(engine: Engine, site: Site) -> None:
    """The original write-up's commands as a person types them, on a terminal: `docker exec
    -it NAME sh` (with podman, `scripts/container shell`, which runs `podman exec -it NAME
    sh`), then `ps aux`, which lists gunicorn's master and three workers, the shell and ps:
    nothing else."""
    if engine.kind == "docker":
        argv = ["docker", "exec", "-it", site.name, "sh"]
    else:
        argv = engine.ns.argv([str(SCRIPT), "shell"])
    lines = ["stty size", "ps aux", "exit"]
    out = terminal_session(argv, engine.env(FLASKR_CONTAINER=site.name), lines, 60)
    assert "stty size\n50 250\n" in out, out  # the terminal's size reached the container
    print(f"$ {' '.join(argv[-5:])}\n{out}")
    listing = out.split("ps aux\n", 1)[1].rsplit("$ ", 1)[0]
    header, *rows = listing.strip().splitlines()
    assert header.split()[-1] == "COMMAND" and header.split()[6] == "TTY", header
    commands = [row.split(None, 10)[10] for row in rows]
    gunicorn = [c for c in commands if "gunicorn" in c and c.endswith("hello:app")]
    assert len(gunicorn) == 4, listing
    assert sorted(c for c in commands if c not in gunicorn) == ["ps aux", "sh"], listing
    # The shell and ps have the terminal; gunicorn has none.
    ttys = {row.split(None, 10)[10]: row.split()[6] for row in rows}
    assert ttys["sh"].startswith("pts/") and ttys["ps aux"] == ttys["sh"], listing
    assert {ttys[c] for c in gunicorn} == {"?"}, listing


def test_python_and_pip_inside_are_the_venvs(engine: Engine, site: Site) -> None:
    # One name per `command -v`: dash (the stand-in's sh) answers only for the first of several.
    out = engine.exec(site.name, "sh", "-c", "for c in python pip; do command -v $c; done").stdout
    assert out.split() == ["/opt/venv/bin/python", "/opt/venv/bin/pip"]
    pip = engine.exec(site.name, "pip", "--version").stdout
    assert "/opt/venv/" in pip, pip


def test_runs_as_non_root_on_a_read_only_root(engine: Engine, site: Site) -> None:
    status = engine.exec(site.name, "cat", "/proc/1/status").stdout
    uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)", status, re.M)
    assert uids and uids.group(1) != "0" and uids.group(2) != "0", status
    assert engine.exec(site.name, "id", "-u").stdout.strip() != "0"
    inspect = engine.cli(
        "container",
        "inspect",
        "--format",
        "{{.HostConfig.ReadonlyRootfs}}|{{range .Mounts}}{{.Destination}} {{end}}|{{.HostConfig.Tmpfs}}",
        site.name,
    ).strip()
    read_only, mounts, tmpfs = inspect.split("|")
    assert read_only == "true"
    assert sorted(mounts.split()) == ["/run/secrets/flaskr_secret_key", "/var/lib/flaskr"]
    assert "/tmp" in tmpfs and "/run" not in tmpfs and "/var/tmp" not in tmpfs, tmpfs
    denied = engine.exec(site.name, "touch", "/flaskr/x", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    assert engine.exec(site.name, "touch", "/var/lib/flaskr/.w", "/tmp/.w").returncode == 0
    assert "flaskr.sqlite" in engine.exec(site.name, "ls", "/var/lib/flaskr").stdout


def test_the_secret_key_comes_from_outside_the_image(engine: Engine, site: Site) -> None:
    image_env = engine.cli("image", "inspect", "--format", "{{.Config.Env}}", engine.image)
    assert "SECRET_KEY" not in image_env
    env = engine.exec(site.name, "env").stdout
    assert "FLASKR_SECRET_KEY_FILE=/run/secrets/flaskr_secret_key" in env
    assert "FLASKR_SECRET_KEY=" not in env
    assert engine.secret_file.stat().st_mode & 0o777 == 0o444
    assert engine.secret_file.parent.stat().st_mode & 0o777 == 0o700


def test_healthcheck_uses_what_the_image_has(engine: Engine, site: Site) -> None:
    """podman runs the HEALTHCHECK on demand; Docker runs it every 30 s and `docker inspect`
    shows `starting` until the first run passes, then `healthy`."""

    def healthy() -> bool:
        health = engine.script("health", FLASKR_CONTAINER=site.name).stdout.strip()
        assert health.splitlines()[-1:] in (["healthy"], ["starting"]), health
        return health.splitlines()[-1:] == ["healthy"]

    until(healthy, 75, "the HEALTHCHECK to pass", step=1)
    if engine.kind == "docker":
        probes = json.loads(engine.cli("inspect", "--format", "{{json .State.Health}}", site.name))
        print("docker inspect .State.Health:", json.dumps(probes, indent=1))
        assert probes["Status"] == "healthy" and probes["Log"][-1]["ExitCode"] == 0, probes
