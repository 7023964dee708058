"""Restore drills: a backup taken under real gunicorn while writers write, restored onto a
fresh instance, holds every write acknowledged before it started; users log in and images are
served from the copy. A backup killed half-way leaves no file under a backup's name and the
live database unharmed. SQLite and PostgreSQL (Debian's packages, pg_dump/pg_restore)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pytest
from sqlalchemy import create_engine, text

from flaskr import create_app
from flaskr.backup import backups_in, postgresql
from flaskr.db import db, head_revision
from tests.helpers import tutorial_database
from toolkit import ROOT, servers
from toolkit.apps import config_for
from toolkit.drills import AFTER, BEFORE, PASSWORD, acknowledged_before, writers
from toolkit.load import Load, Tally, Writer, record
from toolkit.postgres import postgres
from toolkit.servers import VENV_BIN, app_env, flask, init_db
from toolkit.visitors import Visitor
from toolkit.wait import until

#: The schema revision this code migrates to: what a new backup records.
HEAD = head_revision()


@contextmanager
def serve(env: dict[str, str], log: Path) -> Iterator[str]:
    with servers.serve(env, log, ready="/readyz", timeout=60) as server:
        yield server.base


def stored(url: str) -> dict[str, set[str]]:
    """What the database at ``url`` holds, keyed as the Writer keys its writes."""
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return {
                "post": {t for (t,) in c.execute(text("SELECT title FROM post"))},
                "comment": {b for (b,) in c.execute(text("SELECT body FROM comment"))},
                "like": {
                    f"{u}:{p}"
                    for u, p in c.execute(
                        text(
                            'SELECT "user".username, post_like.post_id FROM post_like'
                            ' JOIN "user" ON "user".id = post_like.user_id'
                        )
                    )
                },
            }
    finally:
        engine.dispose()


def write_waits(tally: Tally, start: float, end: float) -> dict[str, float]:
    """The slowest write that overlapped [start, end], and the slowest one before it."""

    def slowest(rs: list) -> float:
        return round(max((r.ended - r.started for r in rs), default=0.0), 3)

    writes = [r for r in tally.results if r.kind in ("post", "comment", "like")]
    return {
        "max_write_seconds_during_backup": slowest(
            [r for r in writes if r.ended > start and r.started < end]
        ),
        "max_write_seconds_before_backup": slowest([r for r in writes if r.ended < start]),
    }


def drill(env: dict[str, str], fresh_env: dict[str, str], url: str, fresh_url: str, tmp_path: Path):
    """Write under load, back up in the middle, keep writing; restore onto a fresh instance
    and check it there."""
    folder = tmp_path / "backups"
    tally = Tally()
    with serve(env, tmp_path / "gunicorn.log") as base:
        clients, image_post, image = writers(base, tally)
        with Load.each(clients, Writer.step, 120) as load:
            time.sleep(BEFORE)
            backup_started = time.monotonic()
            summary = json.loads(flask(env, "backup", str(folder), "--json").stdout)
            backup_ended = time.monotonic()
            time.sleep(AFTER)
            load.stop()
        refused = flask(env, "restore", summary["path"], check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "Refusing to restore while the app serves" in refused.stderr

    assert Path(summary["path"]).stat().st_mode & 0o777 == 0o600  # pg_dump's file too
    restored = json.loads(flask(fresh_env, "restore", summary["path"], "--json").stdout)
    before = acknowledged_before(tally, backup_started)
    after = acknowledged_before(tally, float("inf"))
    found = stored(fresh_url)
    numbers: dict[str, Any] = {
        "backup": summary,
        "restore": restored,
        "acknowledged_before_backup": {k: len(v) for k, v in before.items()},
        "found_after_restore": {k: len(v & found[k]) for k, v in before.items()},
        "acknowledged_in_all": {k: len(v) for k, v in after.items()},
        "backup_wall_seconds": round(backup_ended - backup_started, 3),
        **write_waits(tally, backup_started, backup_ended),
        "requests": tally.summary()["all"],
    }
    record(tmp_path, f"restore drill ({Path(summary['path']).suffix})", numbers)
    assert all(before.values()), numbers  # every kind was written before the backup
    assert {k: sorted(v - found[k])[:10] for k, v in before.items()} == {
        "post": [],
        "comment": [],
        "like": [],
    }
    # The copy is one moment: nothing acknowledged after the backup ended is in it.
    late = (
        acknowledged_before(tally, float("inf"))["post"]
        - acknowledged_before(tally, backup_ended)["post"]
    )
    assert late and not late & found["post"], numbers
    assert restored["posts"] == summary["posts"] and restored["users"] == summary["users"]

    with serve(fresh_env, tmp_path / "fresh.log") as base:
        visitor = Visitor(base)
        r = visitor.submit("/auth/login", {"username": "drill3", "password": PASSWORD})
        assert r.status_code == 302 and r.headers["Location"] == "/", r.text[:300]
        served = visitor.get(f"/{image_post}/image")
        assert served.status_code == 200 and served.content == image
    return summary


# --- SQLite -----------------------------------------------------------------------------------


def sqlite_url(env: dict[str, str]) -> str:
    return f"sqlite:///{env['FLASKR_INSTANCE_PATH']}/flaskr.sqlite"


def integrity(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return c.exec_driver_sql("PRAGMA integrity_check").scalar()
    finally:
        engine.dispose()


def test_sqlite_restore_drill(tmp_path: Path) -> None:
    env = app_env(tmp_path / "live")
    fresh = app_env(tmp_path / "fresh")
    init_db(env)
    drill(env, fresh, sqlite_url(env), sqlite_url(fresh), tmp_path)
    assert integrity(sqlite_url(fresh)) == "ok"


def test_sqlite_backup_killed_half_way(tmp_path: Path) -> None:
    env = app_env(tmp_path / "live")
    init_db(env)
    flask(env, "seed", "--force", "--posts", "40000")
    url = sqlite_url(env)
    folder = tmp_path / "backups"
    # Half-way: the snapshot copy has started growing, and no backup is published yet.
    kill_backup_when(env, folder, ".*-copy.sqlite.partial")
    assert integrity(url) == "ok"
    assert stored(url)["post"] >= {"Post 1", "Post 40000"}
    assert next_backup_clears_up(env, folder)["posts"] == 40000


def kill_backup_when(env: dict[str, str], folder: Path, partial: str) -> None:
    """Start `flask backup FOLDER`, and SIGKILL it with whatever it started (as `systemctl
    stop` kills a unit's cgroup) once a file matching ``partial`` has grown: then no file is
    under a backup's name, only the partial one."""
    backup = subprocess.Popen(
        [str(VENV_BIN / "flask"), "--app", "flaskr", "backup", str(folder)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        until(lambda: any(p.stat().st_size > 0 for p in folder.glob(partial)), 60, partial)
    finally:
        os.killpg(backup.pid, signal.SIGKILL)
        backup.wait(30)
    assert backup.returncode == -signal.SIGKILL
    assert backups_in(folder) == []
    assert list(folder.glob(partial))


def next_backup_clears_up(env: dict[str, str], folder: Path) -> dict[str, Any]:
    """The next backup succeeds, and leaves only itself in the folder."""
    summary = json.loads(flask(env, "backup", str(folder), "--json").stdout)
    assert [p.name for p in folder.iterdir() if p.name != ".lock"] == [Path(summary["path"]).name]
    return summary


def test_a_tutorial_backup_is_restored_migrated_and_served(tmp_path: Path) -> None:
    """A copy of the Flask tutorial's own database (schema.sql, its users' old password
    hashes), gzip'd: restored onto a fresh instance, migrated, and its users log in."""
    tutorial_database(tmp_path / "tutorial.sqlite")
    old = tmp_path / "tutorial.sqlite.gz"
    old.write_bytes(gzip.compress((tmp_path / "tutorial.sqlite").read_bytes()))
    env = app_env(tmp_path / "fresh")
    done = flask(env, "restore", str(old))
    assert "Upgraded the Flask tutorial's database in place." in done.stdout
    assert f"8 posts, 2 users, revision {HEAD}" in done.stdout
    with serve(env, tmp_path / "gunicorn.log") as base:
        visitor = Visitor(base)
        r = visitor.submit("/auth/login", {"username": "test", "password": "test"})
        assert r.status_code == 302 and r.headers["Location"] == "/"
        assert visitor.post_id("test title") == 1  # the tutorial's post, found by search


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[str]:
    with postgres() as pg:
        yield pg.url


def test_postgresql_restore_drill(pg_cluster: str, tmp_path: Path) -> None:
    fresh_url = pg_cluster.rsplit("/", 1)[0] + "/flaskr_restored"
    admin = create_engine(pg_cluster, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.exec_driver_sql("CREATE DATABASE flaskr_restored")
    finally:
        admin.dispose()
    env = app_env(tmp_path / "live", FLASKR_DATABASE_URL=pg_cluster)
    fresh = app_env(tmp_path / "fresh", FLASKR_DATABASE_URL=fresh_url)
    init_db(env)
    summary = drill(env, fresh, pg_cluster, fresh_url, tmp_path)
    assert summary["path"].endswith(".pgdump")
    # A second restore over the now-populated copy keeps it aside first.
    again = flask(fresh, "restore", summary["path"])
    assert "Kept the previous database as" in again.stdout


def new_database(cluster_url: str, name: str) -> str:
    """A new empty database in the suite's cluster; its URL."""
    admin = create_engine(cluster_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.exec_driver_sql(f"CREATE DATABASE {name}")
    finally:
        admin.dispose()
    return cluster_url.rsplit("/", 1)[0] + "/" + name


def test_a_damaged_postgresql_dump_leaves_the_live_database_as_it_was(
    pg_cluster: str, tmp_path: Path
) -> None:
    """Back up 50 posts, damage 16 bytes at 98 % of the dump (it still lists, its revision
    still reads): the restore fails saying nothing changed, and every table and post is still
    there. (The tables were dropped before, and outside, pg_restore's transaction: a failure
    left the database with no tables at all.)"""
    url = new_database(pg_cluster, "flaskr_damaged")
    env = app_env(tmp_path / "live", FLASKR_DATABASE_URL=url)
    init_db(env)
    flask(env, "seed", "--force", "--posts", "50")
    dump = Path(json.loads(flask(env, "backup", str(tmp_path / "b"), "--json").stdout)["path"])
    data = bytearray(dump.read_bytes())
    at = len(data) * 98 // 100
    data[at : at + 16] = bytes(b ^ 0xFF for b in data[at : at + 16])
    dump.write_bytes(bytes(data))
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            before = c.execute(text("SELECT count(*), max(id) FROM post")).one()
        assert before[0] >= 50
        done = flask(env, "restore", "--force", str(dump), check=False)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "nothing was changed" in done.stderr or "rolled back" in done.stderr, done.stderr
        with engine.connect() as c:
            assert c.execute(text("SELECT count(*), max(id) FROM post")).one() == before
            assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
    finally:
        engine.dispose()


def test_a_postgresql_restore_that_fails_puts_the_previous_database_back(
    pg_cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dump that reads whole but fails while it is restored (made to fail here: pg_restore's
    first restore exits 1): the copy kept aside a moment before is put back, so the database
    holds what it held, and the error says so."""
    url = new_database(pg_cluster, "flaskr_put_back")
    env = app_env(tmp_path / "live", FLASKR_DATABASE_URL=url)
    init_db(env)
    flask(env, "seed", "--force", "--posts", "20")
    dump = json.loads(flask(env, "backup", str(tmp_path / "b"), "--json").stdout)["path"]
    flask(env, "seed", "--force", "--posts", "5")  # the live database moves on
    app = create_app(config_for(tmp_path, DATABASE_URL=url, BACKUP_FOLDER=str(tmp_path / "aside")))
    real_run_pg = postgresql.run_pg
    restores: list[list[str]] = []

    def failing_first_restore(args: list[str], env: dict[str, str], what: str) -> str:
        if "--single-transaction" in args:
            restores.append(args)
            if len(restores) == 1:
                raise click.ClickException("pg_restore failed: made to fail by the test")
        return real_run_pg(args, env, what)

    monkeypatch.setattr(postgresql, "run_pg", failing_first_restore)
    with app.app_context():
        before = db.session.execute(text("SELECT count(*), max(id) FROM post")).one()
        db.session.remove()
        result = app.test_cli_runner().invoke(args=["restore", "--force", dump])
        assert result.exit_code == 1, result.output
        assert "The previous database was put back from" in result.output, result.output
        assert "nothing changed" in result.output
        assert len(restores) == 2 and restores[1][-1].endswith("-pre-restore.pgdump")
        assert db.session.execute(text("SELECT count(*), max(id) FROM post")).one() == before
        db.session.remove()
        db.engine.dispose()


def shell_block(path: Path) -> str:
    """The literal block (``- |``) of a YAML file: the backup's shell script."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.rstrip().endswith("- |")) + 1
    indent = len(lines[start]) - len(lines[start].lstrip())
    block = []
    for line in lines[start:]:
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        block.append(line[indent:])
    return "\n".join(block)


@pytest.mark.parametrize("manifest", ["compose.yaml", "kubernetes/backup-cronjob.yaml"])
def test_the_manifests_pg_dump_scripts_make_restorable_backups(
    pg_cluster: str, manifest: str, tmp_path: Path
) -> None:
    """The compose service's and the CronJob's scripts, run as written with Debian's pg_dump
    against a real server: a dump `flask restore` takes, and the newest 14 kept."""
    env = app_env(tmp_path / "live", FLASKR_DATABASE_URL=pg_cluster)
    init_db(env)
    script = shell_block(ROOT / "deploy" / manifest).replace("$$", "$")  # compose's escaping
    folder = tmp_path / "backups"
    folder.mkdir()
    for day in range(1, 16):
        (folder / f"flaskr-202001{day:02d}T031700.000Z-pg_dump.pgdump").write_bytes(b"old")
    url = pg_cluster.replace("postgresql+psycopg://", "postgresql://")
    host, port = url.split("@")[1].split("/")[0].split(":")
    done = subprocess.run(
        ["sh", "-ec", script.replace("/backups", str(folder))],
        env={**env, "DATABASE_URL": url, "PGHOST": host, "PGPORT": port, "PGUSER": "postgres",
             "PGDATABASE": "flaskr"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    kept = sorted(p.name for p in folder.iterdir())
    assert len(kept) == 14 and not kept[-1].startswith("flaskr-2020"), kept
    assert not list(folder.glob("*.partial"))
    restored = json.loads(flask(env, "restore", "--force", str(folder / kept[-1]), "--json").stdout)
    assert restored["revision"] == HEAD


def test_postgresql_backup_killed_half_way(pg_cluster: str, tmp_path: Path) -> None:
    """flask backup and its pg_dump killed together (as `systemctl stop` kills the unit's
    cgroup) while the dump is being written: no file under a backup's name, the database
    unharmed, and the next backup clears the leftovers."""
    env = app_env(tmp_path / "live", FLASKR_DATABASE_URL=pg_cluster)
    init_db(env)
    flask(env, "seed", "--force", "--posts", "60000")
    posts = json.loads(flask(env, "backup", str(tmp_path / "first"), "--json").stdout)["posts"]
    folder = tmp_path / "backups"
    kill_backup_when(env, folder, ".*.pgdump.partial")
    assert next_backup_clears_up(env, folder)["posts"] == posts
