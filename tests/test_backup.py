import gzip
import json
import shutil
import sqlite3
import stat
from pathlib import Path

import click
import flask_migrate
import pytest
from flask import Flask
from sqlalchemy import func, select

from flaskr import backup, create_app
from flaskr.backup import files, postgresql, sqlite
from flaskr.db import (
    MIGRATIONS,
    db,
    head_revision,
    known_revisions,
    schema_revision,
    use_migrate,
)
from flaskr.models import Post
from flaskr.serving.lock import hold_serving_lock, serving_lock_path
from tests.helpers import tutorial_database, umask
from toolkit.apps import config_for

#: The schema revision this code migrates to: what a new backup records.
HEAD = head_revision()


def run_backup(app: Flask, *args: str) -> dict:
    result = app.test_cli_runner().invoke(args=["backup", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output.splitlines()[-1])


def post_count(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Post))


def add_post(app: Flask, title: str) -> None:
    with app.app_context():
        db.session.add(Post(title=title, body="b", author_id=1))
        db.session.commit()


def gzip_sqlite(source: Path, target: Path) -> Path:
    with open(source, "rb") as raw, gzip.open(target, "wb") as out:
        shutil.copyfileobj(raw, out)
    return target


def unpack(path: Path, target: Path) -> sqlite3.Connection:
    with gzip.open(path, "rb") as gz:
        target.write_bytes(gz.read())
    return sqlite3.connect(target)


def test_backup_is_a_compressed_private_checked_copy(app: Flask, tmp_path: Path) -> None:
    summary = run_backup(app)
    path = Path(summary["path"])
    assert path.parent == Path(app.instance_path) / "backups"
    assert backup.NAME.match(path.name)["revision"] == HEAD
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert summary["size"] == path.stat().st_size
    assert (summary["posts"], summary["users"], summary["revision"]) == (
        1,
        2,
        HEAD,
    )
    copy = unpack(path, tmp_path / "copy.sqlite")
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("SELECT title FROM post").fetchall() == [("test title",)]
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    finally:
        copy.close()
    # Only the backup and the folder's lock: no copy, journal or partial file is left behind.
    assert sorted(p.name for p in path.parent.iterdir()) == [".lock", path.name]


def test_backup_folder_argument_and_text_summary(app: Flask, tmp_path: Path) -> None:
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "elsewhere")])
    assert result.exit_code == 0
    assert "Backed up to" in result.output and "1 post, 2 users" in result.output
    assert len(backup.backups_in(tmp_path / "elsewhere")) == 1


def test_keep_removes_the_oldest(app: Flask, tmp_path: Path) -> None:
    folder = tmp_path / "b"
    paths = [run_backup(app, str(folder))["path"] for _ in range(3)]
    (folder / "notes.txt").write_text("not a backup: never removed")
    result = app.test_cli_runner().invoke(args=["backup", str(folder), "--keep", "2"])
    assert "Removed 2 older backups (keeping 2)." in result.output
    left = backup.backups_in(folder)
    assert len(left) == 2 and str(left[0]) == paths[2]
    assert (folder / "notes.txt").exists()


def test_progress_line_for_large_databases(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite, "STEP_PAGES", 2)
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "b")])
    assert "Backing up: 0% of" in result.output
    assert "Backing up: 100% of" in result.output
    quiet = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "b"), "--quiet"])
    assert "Backing up" not in quiet.output


def test_restore_keeps_the_current_database_aside(app: Flask) -> None:
    path = run_backup(app)["path"]
    add_post(app, "written after the backup")
    result = app.test_cli_runner().invoke(args=["restore", path])
    assert result.exit_code == 0, result.output
    assert f"Restored {path}:" in result.output and "1 post, 2 users" in result.output
    assert post_count(app) == 1
    aside = next(Path(app.instance_path, "backups").glob("*-pre-restore.sqlite.gz"))
    assert "Kept the previous database as" in result.output and aside.name in result.output
    # The copy kept aside holds the post, and brings it back.
    again = app.test_cli_runner().invoke(args=["restore", "--json", str(aside)])
    assert json.loads(again.output.splitlines()[-1])["posts"] == 2
    assert post_count(app) == 2


def test_restore_prints_plain_sentences_or_one_json_object(app: Flask, capfd) -> None:
    """Plain sentences by default, with "1 post" and no migration log lines between them; the
    name given with --shown-as (scripts/container's: the user's FILE, not its temporary copy)
    in place of PATH; with --json one JSON object and nothing else on stdout."""
    path = run_backup(app)["path"]
    capfd.readouterr()
    plain = app.test_cli_runner().invoke(
        args=["restore", path, "--shown-as", "backups/site.sqlite.gz"]
    )
    assert plain.exit_code == 0, plain.output
    lines = plain.output.splitlines()
    assert not [line for line in lines if line.lstrip().startswith("{")], lines
    assert lines[0].startswith("Kept the previous database as ") and lines[0].endswith(".")
    assert lines[-1].startswith("Restored backups/site.sqlite.gz: ")
    assert ", 1 post, 2 users, revision " in lines[-1] and path not in plain.output
    # Nothing from Alembic's logging on the terminal either (it is JSON in a deployment).
    assert "Context impl" not in "".join(capfd.readouterr())

    as_json = app.test_cli_runner().invoke(args=["restore", "--json", path])
    assert as_json.exit_code == 0, as_json.output
    assert len(as_json.output.strip().splitlines()) == 1, as_json.output
    summary = json.loads(as_json.output)
    assert summary["path"] == path and summary["posts"] == 1 and summary["users"] == 2
    assert summary["kept_aside"].endswith("-pre-restore.sqlite.gz")


def test_restore_onto_a_fresh_instance(app: Flask, tmp_path: Path) -> None:
    path = run_backup(app)["path"]
    fresh = create_app(config_for(tmp_path / "fresh-instance"))
    Path(tmp_path / "fresh-instance").mkdir()
    result = fresh.test_cli_runner().invoke(args=["restore", path])
    assert result.exit_code == 0, result.output
    assert "Kept the previous database" not in result.output
    assert post_count(fresh) == 1
    with fresh.app_context():
        assert db.session.execute(db.text("PRAGMA journal_mode")).scalar() == "wal"
        db.engine.dispose()


def test_restore_refuses_while_serving(app: Flask) -> None:
    path = run_backup(app)["path"]
    hold_serving_lock(app)
    try:
        result = app.test_cli_runner().invoke(args=["restore", path])
        assert result.exit_code == 1
        assert "Refusing to restore while the app serves" in result.output
        assert "--force" in result.output
        forced = app.test_cli_runner().invoke(args=["restore", "--force", path])
        assert forced.exit_code == 0, forced.output
    finally:
        app.extensions.pop("flaskr_serving_lock").close()
    # Once the workers are gone the lock file stays, unheld: restore goes ahead.
    assert app.test_cli_runner().invoke(args=["restore", path]).exit_code == 0


def test_restore_refuses_a_newer_revision(app: Flask, tmp_path: Path) -> None:
    path = Path(run_backup(app)["path"])
    copy = unpack(path, tmp_path / "future.sqlite")
    copy.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    copy.commit()
    copy.close()
    future = gzip_sqlite(tmp_path / "future.sqlite", tmp_path / "future.sqlite.gz")
    add_post(app, "still here")
    result = app.test_cli_runner().invoke(args=["restore", str(future)])
    assert result.exit_code == 1
    assert "revision 0099_from_the_future" in result.output
    assert "made by a newer flaskr" in result.output and "nothing was changed" in result.output
    assert post_count(app) == 2
    assert not list(Path(app.instance_path, "backups").glob("*pre-restore*"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not gzip at all", "is not a flaskr SQLite backup"),
        (gzip.compress(b"gzip, but no database", mtime=0), "does not hold a SQLite database"),
        (
            gzip.compress(b"SQLite format 3\x00 and then nothing", mtime=0),
            "is not a readable SQLite database",
        ),
        (None, "holds no flaskr database"),
    ],
)
def test_restore_refuses_what_is_not_a_backup(
    app: Flask, tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "bad.sqlite.gz"
    if content is None:
        other = sqlite3.connect(tmp_path / "other.sqlite")
        other.execute("CREATE TABLE t (x)")
        other.commit()
        other.close()
        gzip_sqlite(tmp_path / "other.sqlite", path)
    else:
        path.write_bytes(content)
    result = app.test_cli_runner().invoke(args=["restore", str(path)])
    assert result.exit_code == 1
    assert message in result.output
    assert post_count(app) == 1
    assert not list(Path(app.instance_path).glob(".*.partial"))


def test_restore_refuses_a_corrupt_copy(app: Flask, tmp_path: Path) -> None:
    path = Path(run_backup(app)["path"])
    copy = unpack(path, tmp_path / "bad.sqlite")
    copy.close()
    raw = bytearray((tmp_path / "bad.sqlite").read_bytes())
    page = 4096
    raw[page * 2 + 8 : page * 2 + 64] = b"\xff" * 56  # scramble a b-tree page's cells
    (tmp_path / "bad.sqlite").write_bytes(bytes(raw))
    bad = gzip_sqlite(tmp_path / "bad.sqlite", tmp_path / "bad.sqlite.gz")
    result = app.test_cli_runner().invoke(args=["restore", str(bad)])
    assert result.exit_code == 1
    assert "integrity" in result.output or "not a readable SQLite database" in result.output


def test_restore_refuses_the_other_databases_format(app: Flask, tmp_path: Path) -> None:
    dump = tmp_path / "flaskr-20260101T000000.000Z-0006_content_version.pgdump"
    dump.write_bytes(b"PGDMP")
    result = app.test_cli_runner().invoke(args=["restore", str(dump)])
    assert result.exit_code == 1
    assert "is not a sqlite backup (those end in .sqlite.gz)" in result.output


def test_tutorial_backup_is_restored_and_migrated(app: Flask, tmp_path: Path) -> None:
    tutorial_database(tmp_path / "tutorial.sqlite")
    old = gzip_sqlite(tmp_path / "tutorial.sqlite", tmp_path / "tutorial.sqlite.gz")
    result = app.test_cli_runner().invoke(args=["restore", str(old)])
    assert result.exit_code == 0, result.output
    assert "Upgraded the Flask tutorial's database in place." in result.output
    assert f"8 posts, 2 users, revision {HEAD}" in result.output
    with app.app_context():
        assert schema_revision() == HEAD


def test_a_failed_backup_leaves_no_file_under_a_final_name(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "b"

    def killed(_partial: Path, _final: Path) -> None:
        raise KeyboardInterrupt  # as abrupt as it gets in-process (SIGKILL: tests/e2e)

    monkeypatch.setattr(sqlite, "publish", killed)
    with app.app_context(), pytest.raises(KeyboardInterrupt):
        backup.make_backup(folder)
    assert backup.backups_in(folder) == []
    assert [p.name for p in folder.glob(".*.partial")]  # the compressed half, under its own name
    monkeypatch.undo()
    with app.app_context():
        assert db.session.execute(db.text("PRAGMA integrity_check")).scalar() == "ok"
    assert post_count(app) == 1
    # The next backup clears what the killed one left.
    run_backup(app, str(folder))
    assert not list(folder.glob(".*.partial*"))
    assert len(backup.backups_in(folder)) == 1


def test_missing_database_and_missing_client_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = create_app(config_for(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'none.db'}"))
    result = empty.test_cli_runner().invoke(args=["backup", str(tmp_path / "b")])
    assert result.exit_code == 1 and "There is no database at" in result.output
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(click.ClickException, match="Debian's package postgresql-client"):
        postgresql.pg_tool("pg_dump")


def test_client_tools_get_the_password_outside_the_command_line() -> None:
    from sqlalchemy.engine import make_url

    url = make_url("postgresql+psycopg://app:s3cret@db:5432/flaskr?sslmode=require")
    target, env = postgresql.libpq_target(url)
    assert target == "postgresql://app@db:5432/flaskr?sslmode=require"
    assert env["PGPASSWORD"] == "s3cret" and "s3cret" not in target


def test_a_link_planted_as_the_lock_is_refused_and_never_followed(
    app: Flask, tmp_path: Path
) -> None:
    """Whoever could put a link where the backup folder's lock goes would have the service
    create (or lock) a file wherever it points: the lock is opened without following it."""
    folder = Path(app.instance_path) / "backups"
    folder.mkdir(mode=0o700)
    target = tmp_path / "elsewhere" / "victim"
    target.parent.mkdir()
    (folder / ".lock").symlink_to(target)
    result = app.test_cli_runner().invoke(args=["backup"])
    assert result.exit_code == 1
    assert "is a symbolic link, not a lock file" in result.output
    assert not target.exists()
    assert backup.backups_in(folder) == []


def test_a_backup_folder_others_can_write_is_refused(app: Flask) -> None:
    folder = Path(app.instance_path) / "backups"
    folder.mkdir()
    folder.chmod(0o777)
    result = app.test_cli_runner().invoke(args=["backup"])
    assert result.exit_code == 1
    assert "is writable by others (mode 0777)" in result.output
    assert "chmod 0700" in result.output
    assert list(folder.iterdir()) == []


def test_the_serving_lock_never_follows_a_link(app: Flask, tmp_path: Path, caplog) -> None:
    path = serving_lock_path(app)
    assert path is not None
    target = tmp_path / "victim"
    path.symlink_to(target)
    hold_serving_lock(app)
    assert "flaskr_serving_lock" not in app.extensions
    assert "is a symbolic link" in caplog.text
    assert not target.exists()
    # The workers then serve without the lock: a restore must not take that for "not serving".
    restore = app.test_cli_runner().invoke(args=["restore", run_backup(app)["path"]])
    assert restore.exit_code == 1 and "is a symbolic link" in restore.output, restore.output
    assert not target.exists()


def zeros_backup(target: Path, header: bytes, megabytes: int) -> Path:
    """A compressed "backup" of ``header`` then zeros: a few KB that unpack to ``megabytes``."""
    with gzip.open(target, "wb", compresslevel=1) as out:
        out.write(header)
        for _ in range(megabytes):
            out.write(bytes(1024 * 1024))
    return target


def restore_leaves_everything_as_it_was(app: Flask, *args: str) -> str:
    return restore_leaves_everything_as_it_was_but(app, 1, *args)


def restore_leaves_everything_as_it_was_but(app: Flask, posts: int, *args: str) -> str:
    """Run a restore that must fail; the live database still has ``posts``, no partial file."""
    before = sorted(p.name for p in Path(app.instance_path).iterdir())
    result = app.test_cli_runner().invoke(args=["restore", *args])
    assert result.exit_code == 1, result.output
    assert post_count(app) == posts
    assert sorted(p.name for p in Path(app.instance_path).iterdir()) == before  # no partial
    return result.output


def test_a_compressed_backup_that_is_no_database_is_refused_at_its_header(
    app: Flask, tmp_path: Path
) -> None:
    bomb = zeros_backup(tmp_path / "flaskr-zeros.sqlite.gz", b"", 64)
    output = restore_leaves_everything_as_it_was(app, str(bomb))
    assert "does not hold a SQLite database" in output


def test_a_compressed_backup_unpacks_only_as_far_as_allowed(
    app: Flask, tmp_path: Path, monkeypatch
) -> None:
    """A 2 MB file of zeros once grew to 2 GB in the instance folder before it was refused."""
    bomb = zeros_backup(tmp_path / "flaskr-bomb.sqlite.gz", sqlite.SQLITE_HEADER, 24)
    output = restore_leaves_everything_as_it_was(app, "--max-unpacked-mb", "8", str(bomb))
    assert "unpacks to more than the 8 MB that --max-unpacked-mb allows" in output
    assert "nothing changed" in output

    class Usage:
        free = sqlite.RESTORE_RESERVE + 4 * files.MB

    monkeypatch.setattr(shutil, "disk_usage", lambda _folder: Usage)
    output = restore_leaves_everything_as_it_was(app, str(bomb))
    assert "unpacks to more than the free space in" in output and "(4 MB," in output


def test_a_restore_the_disk_cannot_hold_is_refused_before_anything_changes(
    app: Flask, tmp_path: Path, monkeypatch
) -> None:
    """Unpacking fits, but keeping the live database aside and copying the backup in would
    not: refused with the figures, the live database and the backup folder untouched."""
    path = run_backup(app)["path"]
    add_post(app, "after the backup")
    kept = sorted(p.name for p in Path(path).parent.iterdir())
    real = shutil.disk_usage
    calls = []

    def nearly_full(folder):
        calls.append(folder)
        usage = real(folder)
        if len(calls) == 1:  # while unpacking: room enough
            return usage
        return usage._replace(free=sqlite.RESTORE_RESERVE + 1024)

    monkeypatch.setattr(shutil, "disk_usage", nearly_full)
    output = restore_leaves_everything_as_it_was_but(app, 2, path)
    assert "MB free in" in output and "Nothing was changed." in output
    assert sorted(p.name for p in Path(path).parent.iterdir()) == kept  # nothing kept aside


def file_modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


def test_a_restore_onto_a_fresh_instance_writes_files_only_their_owner_may_read(
    app: Flask, tmp_path: Path
) -> None:
    """`flask restore` on an empty instance folder under umask 022 made flaskr.sqlite 0644:
    the restored password hashes were every local user's to read."""
    path = run_backup(app)["path"]
    instance = tmp_path / "fresh-instance"
    instance.mkdir()
    with umask(0o022):
        fresh = create_app(config_for(instance))
        result = fresh.test_cli_runner().invoke(args=["restore", path])
        assert result.exit_code == 0, result.output
        assert post_count(fresh) == 1  # the -wal and -shm too
        found = file_modes(instance)
        # Restored again: the database now there is kept aside first, its copy private too.
        again = fresh.test_cli_runner().invoke(args=["restore", path])
        assert again.exit_code == 0 and "Kept the previous database" in again.output
        # A database an operator made group-readable on purpose keeps its mode.
        (instance / "test.sqlite").chmod(0o640)
        kept = fresh.test_cli_runner().invoke(args=["restore", path])
        assert kept.exit_code == 0, kept.output
        with fresh.app_context():
            db.engine.dispose()
    assert {"test.sqlite", "test.sqlite-wal", "test.sqlite-shm"} <= set(found), found
    assert set(found.values()) == {0o600}, found
    backups = Path(fresh.instance_path) / "backups"
    assert len(list(backups.glob("*-pre-restore.sqlite.gz"))) == 2
    assert set(file_modes(backups).values()) == {0o600}, file_modes(backups)
    assert file_modes(instance) == {"test.sqlite": 0o640, "test.sqlite.migrate-lock": 0o600}


def test_a_restore_while_serving_shows_no_page_of_the_replaced_data(app: Flask) -> None:
    """The review: after `restore --force` the next write brought the content version back to
    a number the workers held pages of the replaced data under: a removed post came back."""
    client = app.test_client()
    path = run_backup(app)["path"]
    add_post(app, "Taken away by the restore")
    assert b"Taken away by the restore" in client.get("/").data  # kept by the page cache
    hold_serving_lock(app)
    try:
        forced = app.test_cli_runner().invoke(args=["restore", "--force", path])
        assert forced.exit_code == 0, forced.output
    finally:
        app.extensions.pop("flaskr_serving_lock").close()
    add_post(app, "Written after the restore")
    page = client.get("/").data
    assert b"Taken away by the restore" not in page and b"Written after the restore" in page


def test_restore_says_the_backups_revision_and_what_it_is_now(app: Flask, tmp_path: Path) -> None:
    """A backup one migration behind: restore says it migrated it, from which revision to which;
    with --no-migrate (a rollback's way back) it stays at the backup's revision."""
    path = Path(run_backup(app)["path"])
    with app.app_context():
        newest = schema_revision()
        revisions = known_revisions()
    older = revisions[revisions.index(newest) - 1]
    unpack(path, tmp_path / "older.sqlite").close()
    # The newest migration taken back by its own downgrade, whichever it is.
    at_older = create_app(
        config_for(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'older.sqlite'}")
    )
    with at_older.app_context():
        use_migrate(at_older)
        flask_migrate.downgrade(MIGRATIONS, older)
        db.engine.dispose()
    older_backup = gzip_sqlite(tmp_path / "older.sqlite", tmp_path / "older.sqlite.gz")
    kept = app.test_cli_runner().invoke(args=["restore", "--no-migrate", str(older_backup)])
    assert kept.exit_code == 0, kept.output
    assert f"The backup is at revision {older}; not migrated (--no-migrate)" in kept.output
    assert f"revision {older}," in kept.output.splitlines()[-1]
    with app.app_context():
        assert schema_revision() == older
    migrated = app.test_cli_runner().invoke(args=["restore", str(older_backup)])
    assert migrated.exit_code == 0, migrated.output
    assert f"The backup was at revision {older}; migrated to {newest}." in migrated.output
    assert "up to date" not in migrated.output
    assert f"revision {newest} (the backup's: {older})," in migrated.output.splitlines()[-1]
    as_json = app.test_cli_runner().invoke(args=["restore", "--json", str(older_backup)])
    assert json.loads(as_json.output)["backup_revision"] == older
