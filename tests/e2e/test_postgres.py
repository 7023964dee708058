"""flaskr on a real PostgreSQL from Debian's packages: the same migrations, every feature,
real gunicorn workers, and migrations that run once when instances start together."""

from __future__ import annotations

import io
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import flask_migrate
import pytest
from flask import Flask
from sqlalchemy import func, make_url, select, text

from flaskr import accounts, create_app, mail
from flaskr.db import (
    MIGRATIONS,
    db,
    drop_all,
    head_revision,
    schema_revision,
    upgrade_schema,
    use_migrate,
)
from flaskr.models import Comment, Image, Like, Post, Tag, User
from tests.helpers import insert_post, outbox
from toolkit import ROOT
from toolkit.apps import TUTORIAL_USERS, config_for, make_app
from toolkit.cmdlines import watching_command_lines
from toolkit.images import png
from toolkit.postgres import Postgres, postgres
from toolkit.servers import VENV_BIN, app_env, serve
from toolkit.visitors import Visitor


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def pg_url(pg: Postgres) -> str:
    return pg.url


@pytest.fixture
def empty_after(pg_url: str, tmp_path: Path) -> Iterator[str]:
    """The module's database, emptied after the test however it ends, for the next one."""
    yield pg_url
    app = create_app(config_for(tmp_path, DATABASE_URL=pg_url))
    with app.app_context():
        drop_all()
        db.engine.dispose()


@pytest.fixture
def pg_app(empty_after: str, tmp_path: Path) -> Iterator[Flask]:
    app = make_app(tmp_path, DATABASE_URL=empty_after)
    yield app
    with app.app_context():
        db.engine.dispose()  # its connections closed before empty_after drops the tables


def test_migrations_build_the_schema(pg_app) -> None:
    with pg_app.app_context():
        assert db.engine.dialect.name == "postgresql"
        assert schema_revision() == head_revision()
        assert upgrade_schema() == "The database is up to date."
        indexes = {i["name"] for i in db.inspect(db.engine).get_indexes("post")}
        assert "ix_post_title_trgm" in indexes  # title search's pg_trgm index (0005)
    result = pg_app.test_cli_runner().invoke(args=["db", "check", "-d", MIGRATIONS])
    assert result.exit_code == 0, result.output


def test_every_feature(pg_app) -> None:
    client = pg_app.test_client()
    fields = {"username": "pat", "password": "pat password"}
    client.post("/auth/register", data=fields)
    assert client.post("/auth/login", data=fields).status_code == 302
    for i in range(7):
        data = {"title": f"pg post {i}", "body": "*hi*", "tags": "pg, Post_Gres"}
        if i == 6:
            data["image"] = (io.BytesIO(png()), "p.png")
        assert client.post("/create", data=data).status_code == 302
    assert client.post("/8/like").status_code == 302
    assert client.post("/8/comment", data={"body": "first"}).status_code == 302
    page = client.get("/8").text
    assert "1 like<" in page and "first" in page and 'src="/8/image"' in page
    assert client.get("/?q=PG POST").text.count('<article class="post">') == 5
    assert "pg post 0" in client.get("/?q=pg&page=2").text
    assert "pg post 3" in client.get("/tag/post_gres").text
    assert client.get("/8/image").headers["Content-Type"] == "image/png"
    assert client.post("/8/delete").status_code == 302
    with pg_app.app_context():
        for model, expected in ((Post, 7), (Like, 0), (Comment, 0), (Image, 0), (Tag, 2)):
            assert db.session.scalar(select(func.count()).select_from(model)) == expected
    assert client.post("/99999999999/update").status_code == 404


def test_tutorial_users_log_in(pg_app) -> None:
    client = pg_app.test_client()
    response = client.post("/auth/login", data={"username": "test", "password": "test"})
    assert response.headers["Location"] == "/"


def test_seed_uses_returning(pg_app) -> None:
    result = pg_app.test_cli_runner().invoke(args=["seed", "--force", "--posts", "30"])
    assert "Added 30 posts" in result.output
    # the sequence moved on: a new post after seeding gets a fresh id
    client = pg_app.test_client()
    client.post("/auth/login", data={"username": "test", "password": "test"})
    assert client.post("/create", data={"title": "after seed"}).status_code == 302


def test_instances_starting_together_migrate_once(empty_after: str, tmp_path: Path) -> None:
    env = app_env(tmp_path, FLASKR_DATABASE_URL=empty_after)
    starts = [
        subprocess.Popen(
            [str(VENV_BIN / "flask"), "--app", "flaskr", "init-db"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in starts]
    assert [p.returncode for p in starts] == [0, 0, 0, 0], outputs
    assert sum("Initialized the database." in o for o in outputs) == 1, outputs
    assert sum("up to date" in o for o in outputs) == 3

    with serve(env, tmp_path / "log") as server:
        visitor = Visitor(server.base)
        visitor.register_and_login("gina", "gina password")
        visitor.create_post("Served by three workers", tags="pg", image=png())
        post_id = visitor.post_id("Served by three workers")
        for _ in range(6):  # several requests, so more than one worker answers
            assert visitor.get(f"/{post_id}/image").status_code == 200


def test_cached_pages_follow_writes_from_anywhere(pg_app) -> None:
    """The content version's triggers (migration 0006) on PostgreSQL: a write made outside
    this app's requests still reaches a visitor's next page at once."""
    visitor = pg_app.test_client()
    assert b"Written elsewhere" not in visitor.get("/").data
    insert_post(pg_app, "Written elsewhere")
    assert b"Written elsewhere" in visitor.get("/?q=elsewhere").data
    assert b"Written elsewhere" in visitor.get("/").data


def test_names_differing_in_case_upgrade_and_accounts_work(empty_after: str, tmp_path) -> None:
    """Migration 0007 on PostgreSQL (whose lower() may fold non-ASCII letters too): the oldest
    of each name keeps it, the others become name-ID; then throttling and logout on the
    same database."""
    from flask_migrate import upgrade

    from flaskr.db import use_migrate
    from flaskr.models import User

    app = create_app(config_for(tmp_path, DATABASE_URL=empty_after))
    with app.app_context():
        use_migrate(app)
        upgrade(directory=MIGRATIONS, revision="0006_content_version")
        db.session.execute(
            text("INSERT INTO \"user\" (username, password) VALUES (:n, 'x')"),
            [{"n": n} for n in ("Ada", "ada", "\u00c9mile", "\u00e9mile", "test")],
        )
        db.session.commit()
        upgrade_schema()
        names = db.session.scalars(select(User.username).order_by(User.id)).all()
        assert names[:2] == ["Ada", "ada-2"] and names[-1] == "test"
        # É and é clash only where the database's locale folds them: either way, all differ.
        distinct = 'SELECT count(DISTINCT lower(username)) = count(*) FROM "user"'
        assert db.session.scalar(text(distinct)) is True
        db.session.execute(text("DELETE FROM \"user\" WHERE username != 'test'"))
        db.session.execute(
            text('UPDATE "user" SET password = :p'),
            {"p": TUTORIAL_USERS[0][1]},  # the password "test"
        )
        db.session.commit()
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    client, thief = app.test_client(), app.test_client()
    wrong = {"username": "TEST", "password": "wrong"}
    statuses = [client.post("/auth/login", data=wrong).status_code for _ in range(6)]
    assert statuses == [400, 400, 400, 400, 400, 429]
    assert (
        thief.post(
            "/auth/login",
            data={"username": "Test", "password": "test"},
            environ_base={"REMOTE_ADDR": "10.0.0.9"},  # not the address that failed
        ).status_code
        == 302
    )
    client.set_cookie("session", thief.get_cookie("session").value)
    thief.post("/auth/logout")
    assert client.get("/create").headers["Location"] == "/auth/login"
    with app.app_context():
        db.engine.dispose()


def password_role(pg: Postgres, password: str) -> str:
    """A superuser that must give ``password`` (scram-sha-256) over TCP, where the cluster
    trusts everyone else: its name."""
    import psycopg

    name = f"mover_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg.dsn, autocommit=True) as connection:
        connection.execute(f"CREATE ROLE {name} LOGIN SUPERUSER PASSWORD '{password}'")
        hba = pg.data / "pg_hba.conf"
        hba.write_text(f"host all {name} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        connection.execute("SELECT pg_reload_conf()")
    return name


def test_copy_db_moves_a_sqlite_site_to_postgresql(
    pg: Postgres, empty_after: str, tmp_path: Path
) -> None:
    """docs/scale-out.md's move: a site of 10,000 posts, images, comments and likes, copied
    from its SQLite file into an empty migrated PostgreSQL; the copy serves it all. copy-db
    runs as an operator runs it, a process of its own, as a role that must give a password:
    it reads it from a file of mode 0600, and no process's command line holds it meanwhile
    (every one read every 20 ms); libpq's PGPASSWORD and PGPASSFILE give it too."""
    (tmp_path / "sqlite").mkdir()
    site = make_app(tmp_path / "sqlite")
    runner = site.test_cli_runner()
    assert runner.invoke(args=["seed", "--force", "--posts", "9999"]).exit_code == 0
    client = site.test_client()
    client.post("/auth/login", data={"username": "test", "password": "test"})
    data = {"title": "moved", "body": "b", "tags": "moving", "image": (io.BytesIO(png()), "m.png")}
    assert client.post("/create", data=data).status_code == 302
    moved = 10_001  # the tutorial's post, 9,999 seeded, this one
    assert client.post(f"/{moved}/comment", data={"body": "still here"}).status_code == 302
    assert client.post(f"/{moved}/like").status_code == 302
    target = create_app(config_for(tmp_path, DATABASE_URL=empty_after))
    with target.app_context():
        upgrade_schema()  # as `FLASKR_DATABASE_URL=... flask --app flaskr init-db` does
    password = uuid.uuid4().hex
    role = password_role(pg, password)
    to = make_url(empty_after).set(drivername="postgresql", username=role)
    to = to.render_as_string(hide_password=False)  # it has none
    secret = tmp_path / "target-password"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    home = tmp_path / "home"  # no ~/.pgpass of the machine's
    home.mkdir()
    env = app_env(
        tmp_path / "instance",
        FLASKR_DATABASE_URL=site.config["DATABASE_URL"],
        HOME=str(home),
    )
    for name in ("PGPASSWORD", "PGPASSFILE", "PGSERVICEFILE"):
        env.pop(name, None)
    flask_copy_db = [str(VENV_BIN / "flask"), "--app", "flaskr", "copy-db", "--to", to]

    def copy_db(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - the suite's own venv
            [*flask_copy_db, *args], cwd=ROOT, env={**env, **extra}, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip

    with watching_command_lines(password.encode()) as control:
        # The sampler sees a password on a command line, for the briefest process.
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.2)", password], check=True)
    assert control.found, "the sampler missed a command line holding the password"

    with watching_command_lines(password.encode()) as watch:
        asked = copy_db()  # no password anywhere and no terminal: refused, saying how
        result = copy_db("--password-file", str(secret))
        pgpass = tmp_path / "pgpass"
        pgpass.write_text(f"127.0.0.1:{pg.port}:flaskr:{role}:{password}\n")
        pgpass.chmod(0o600)
        from_pgpass = copy_db(PGPASSFILE=str(pgpass))
        from_env = copy_db(PGPASSWORD=password)
    print(result.stdout, result.stderr)
    print(f"every command line read {watch.rounds} times, 20 ms apart, during the copies")
    # No terminal to ask at: the way out, not libpq's "no password supplied".
    assert asked.returncode == 1, asked.stderr
    assert "asks for a password, and there is no terminal to ask it" in asked.stderr
    assert "--password-file FILE" in asked.stderr and "Traceback" not in asked.stderr
    assert result.returncode == 0, result.stderr
    assert "post: 10001 rows" in result.stdout and "counts verified" in result.stdout
    # Once copied, a second copy is refused, after logging in: libpq found the password.
    for again in (from_pgpass, from_env):
        assert again.returncode == 1 and "already holds rows" in again.stderr, again.stderr
    assert watch.rounds > 10 and watch.found == []
    for done in (asked, result, from_pgpass, from_env):
        assert password not in done.stdout + done.stderr
    copy = target.test_client()
    page = copy.get(f"/{moved}").text
    assert "still here" in page and "1 like<" in page and f'src="/{moved}/image"' in page
    assert copy.get(f"/{moved}/image").data == site.test_client().get(f"/{moved}/image").data
    # The sequences follow the copied ids: the next post is 10,002, not a clash with id 1.
    copy.post("/auth/login", data={"username": "test", "password": "test"})
    assert copy.post("/create", data={"title": "after the move", "body": "b"}).status_code == 302
    with target.app_context():
        assert db.session.scalar(select(func.max(Post.id))) == moved + 1
    with target.app_context():
        db.engine.dispose()  # the session's connection is back in the pool by now


def test_mail_requests_claims_and_migration_0012(pg_app, tmp_path) -> None:
    """A reset asked for writes its message; two senders' claims exclude each other; the
    address is unique whatever its case; and 0012 goes down and up again on PostgreSQL."""
    pg_app.config.update(
        MAIL_URL="smtp://localhost:25", MAIL_FROM="blog@example.test", SITE_URL="https://b.test"
    )
    with pg_app.app_context():
        accounts.set_email(db.session.get_one(User, 1), "Test@Example.test")
        with pytest.raises(accounts.EmailTaken):
            accounts.set_email(db.session.get_one(User, 2), "test@EXAMPLE.test")
    client = pg_app.test_client()
    assert client.post("/auth/forgot", data={"name": "test@example.test"}).status_code == 302
    (message,) = outbox(pg_app)
    assert message.recipient == "Test@Example.test" and "https://b.test/auth/reset/" in message.body
    with pg_app.app_context():
        assert [row.id for row in mail.claim("a" * 32)] == [message.id]
        assert mail.claim("b" * 32) == []
        db.session.remove()  # its transaction's locks would hold the downgrade's DROP TABLE
        use_migrate(pg_app)
        flask_migrate.downgrade(MIGRATIONS, "0011_render_cost")
        assert "mail_outbox" not in db.inspect(db.engine).get_table_names()
        flask_migrate.upgrade(MIGRATIONS)
        assert schema_revision() == head_revision()
