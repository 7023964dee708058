import os
import sqlite3
import stat
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text

from flaskr import create_app
from flaskr.db import (
    MIGRATIONS,
    db,
    head_revision,
    known_revisions,
    schema_revision,
    upgrade_schema,
)
from flaskr.models import Post, User
from tests.helpers import tutorial_database, umask
from toolkit.apps import config_for

#: A production app (not TESTING) whose command output is plain text, as at a terminal.
TEXT_LOGS = {"SECRET_KEY": "s-9f86d081884c7d65a2f0e3b1c4d7e6f8", "LOG_FORMAT": "text"}


def test_tutorial_database_upgrades_in_place(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    instance.mkdir()
    tutorial_database(instance / "flaskr.sqlite")
    app = create_app(TEXT_LOGS)
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert "Upgraded the Flask tutorial's database in place." in result.output
    with app.app_context():
        assert schema_revision() is not None
        assert db.session.scalar(select(db.func.count()).select_from(User)) == 2
        assert db.session.scalar(select(db.func.count()).select_from(Post)) == 8
        first = db.session.get(Post, 1)
        assert (first.title, first.body, first.author.username) == (
            "test title",
            "test\nbody",
            "test",
        )
        assert first.created.year == 2018
        assert "tag" in inspect(db.engine).get_table_names()
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    response = client.post("/auth/login", data={"username": "other", "password": "other"})
    assert response.headers["Location"] == "/"
    assert b"old post 6" in client.get("/").data
    assert b"old post 3" in client.get("/?q=post 3").data  # the search index holds old posts
    with app.app_context():
        # the old pbkdf2 hash was replaced by a scrypt one at login
        assert db.session.get(User, 2).password.startswith("scrypt:")
        assert db.session.get(User, 1).password.startswith("pbkdf2:sha256")
    # running it again changes nothing
    assert "up to date" in app.test_cli_runner().invoke(args=["init-db"]).output


def test_init_db_creates_then_keeps_data(tmp_path: Path) -> None:
    app = create_app(TEXT_LOGS)
    runner = app.test_cli_runner()
    assert "Initialized the database." in runner.invoke(args=["init-db"]).output
    with app.app_context():
        db.session.add(User(username="keep", password="x"))
        db.session.commit()
    assert "up to date" in runner.invoke(args=["init-db"]).output
    with app.app_context():
        assert db.session.scalar(select(User.username)) == "keep"


def test_init_db_drop_asks_first(tmp_path: Path) -> None:
    app = create_app(TEXT_LOGS)
    runner = app.test_cli_runner()
    runner.invoke(args=["init-db"])
    with app.app_context():
        db.session.add(User(username="gone", password="x"))
        db.session.commit()
    refused = runner.invoke(args=["init-db", "--drop"], input="n\n")
    assert refused.exit_code == 1
    with app.app_context():
        assert db.session.scalar(select(User.username)) == "gone"
    result = runner.invoke(args=["init-db", "--drop"], input="y\n")
    assert "Dropped all tables." in result.output
    with app.app_context():
        assert db.session.scalar(select(User.username)) is None
    assert runner.invoke(args=["init-db", "--drop", "--yes"]).exit_code == 0


def test_sqlite_is_tuned_for_concurrent_workers(app) -> None:
    with app.app_context(), db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 15000


def test_foreign_keys_are_enforced(app) -> None:
    with app.app_context():
        db.session.add(Post(title="orphan", body="", author_id=999))
        try:
            db.session.commit()
        except Exception as e:  # noqa: BLE001
            assert "FOREIGN KEY" in str(e)
        else:
            raise AssertionError("a post by a missing user was stored")


def test_models_match_migrations(app) -> None:
    """The models and the migration scripts describe the same schema (flask db check)."""
    result = app.test_cli_runner().invoke(args=["db", "check", "-d", MIGRATIONS])
    assert result.exit_code == 0, result.output


def test_migration_lock_file_next_to_database(app, tmp_path: Path) -> None:
    with app.app_context():
        upgrade_schema()
    assert (tmp_path / "test.sqlite.migrate-lock").exists()


def test_lock_in_instance_folder_for_memory_database(tmp_path: Path) -> None:
    app = create_app(config_for(tmp_path, DATABASE_URL="sqlite://"))
    with app.app_context():
        assert upgrade_schema() == "Initialized the database."
        assert db.session.execute(text("SELECT count(*) FROM post")).scalar() == 0
    assert (tmp_path / "instance" / ".migrate-lock").exists()


def test_lost_connection_at_teardown_does_not_crash(app, monkeypatch) -> None:
    """PostgreSQL restarting mid-request makes the final ROLLBACK fail: answer anyway."""
    from sqlalchemy.exc import OperationalError

    real_remove = db.session.remove
    calls = []

    def gone_once() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("ROLLBACK", {}, Exception("server closed the connection"))
        real_remove()

    monkeypatch.setattr(db.session, "remove", gone_once)
    response = app.test_client().get("/")
    assert response.status_code == 200
    assert len(calls) == 2  # ours failed and forgot the session; Flask-SQLAlchemy's then ran


def test_tutorial_names_differing_in_case_still_upgrade(tmp_path: Path) -> None:
    """The tutorial let Alice and alice both register. The oldest keeps the name; each later
    one becomes name-ID and logs in with it, with its own password."""
    instance = tmp_path / "instance"
    instance.mkdir()
    tutorial_database(instance / "flaskr.sqlite")
    connection = sqlite3.connect(instance / "flaskr.sqlite")
    hashed = connection.execute("SELECT password FROM user WHERE username = 'test'").fetchone()
    connection.executemany(
        "INSERT INTO user (username, password) VALUES (?, ?)",
        [("Test", hashed[0]), ("TEST", hashed[0]), ("Test-3", hashed[0])],
    )
    connection.commit()
    connection.close()
    app = create_app({"SECRET_KEY": "s-9f86d081884c7d65a2f0e3b1c4d7e6f8"})
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        names = db.session.scalars(select(User.username).order_by(User.id)).all()
    # ids: test 1, other 2, Test 3, TEST 4, Test-3 5 (which takes Test's first choice)
    assert names == ["test", "other", "Test-3-2", "TEST-4", "Test-3"]
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    response = client.post("/auth/login", data={"username": "TEST-4", "password": "test"})
    assert response.headers["Location"] == "/"


def test_a_forked_worker_never_uses_the_parents_connections(app) -> None:
    """gunicorn forks workers from a master that loaded the app: a connection the master had
    pooled must not be shared, so the child starts with an empty pool."""
    with app.app_context():
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        assert db.engine.pool.checkedin() == 1  # kept in the parent's pool
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: report what its pool holds, then leave at once
            try:
                os.write(write, str(db.engine.pool.checkedin()).encode())
            finally:
                os._exit(0)
        os.close(write)
        in_child = os.read(read, 16).decode()
        os.close(read)
        os.waitpid(pid, 0)
        assert in_child == "0"
        assert db.engine.pool.checkedin() == 1  # the parent's own is untouched


def modes(folder: Path, pattern: str = "flaskr.sqlite*") -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.glob(pattern)}


def test_a_new_database_is_readable_by_its_owner_only_whatever_the_umask(tmp_path) -> None:
    """Under the usual umask 022 SQLite made flaskr.sqlite 0644: every local user could read
    the password hashes. The app makes it 0600 (SQLite gives -wal and -shm its mode)."""
    with umask(0o022):
        app = create_app(TEXT_LOGS)
        result = app.test_cli_runner().invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        with app.app_context(), db.engine.connect() as connection:
            connection.execute(text("SELECT count(*) FROM post"))  # the -wal and -shm are there
            instance = tmp_path / "instance"
            found = modes(instance)
    assert {"flaskr.sqlite", "flaskr.sqlite-wal", "flaskr.sqlite-shm"} <= set(found), found
    assert set(found.values()) == {0o600}, found  # the migration's lock file with them
    # An operator may have made it group-readable on purpose: an existing file keeps its mode.
    (instance / "flaskr.sqlite").chmod(0o640)
    with umask(0o022):
        assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
        with app.app_context():
            db.engine.dispose()
    assert modes(instance, "flaskr.sqlite") == {"flaskr.sqlite": 0o640}


def test_a_database_without_tables_is_named_without_its_query_values(tmp_path) -> None:
    """FLASKR_DATABASE_URL may carry libpq options, a password among them, in its query:
    a command's message shows the URL with *** for each value."""
    (tmp_path / "empty.sqlite").touch()
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}?timeout=31415926"
    app = create_app({**TEXT_LOGS, "DATABASE_URL": url})
    result = app.test_cli_runner().invoke(args=["make-admin", "nobody"])
    assert result.exit_code == 1 and "has no flaskr tables yet" in result.output, result.output
    assert "31415926" not in result.output and "empty.sqlite?timeout=***" in result.output


def test_the_revisions_read_from_the_scripts_are_alembics() -> None:
    """The migration scripts are read without Alembic (serving workers do not import it):
    the head and the order must still be what Alembic makes of them."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    scripts = ScriptDirectory.from_config(config)
    assert head_revision() == scripts.get_current_head()
    assert known_revisions() == [r.revision for r in reversed(list(scripts.walk_revisions()))]
