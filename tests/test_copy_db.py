import io

import pytest
from sqlalchemy import func, select

from flaskr import create_app
from flaskr.db import db, upgrade_schema
from flaskr.models import Image, Post, User
from toolkit.apps import config_for
from toolkit.images import image_bytes


def migrated(tmp_path, name: str) -> str:
    url = f"sqlite:///{tmp_path / name}"
    app = create_app(config_for(tmp_path, DATABASE_URL=url))
    with app.app_context():
        upgrade_schema()
        db.engine.dispose()
    return url


def test_copy_db_copies_every_row_and_verifies(app, auth, client, tmp_path) -> None:
    auth.login()
    data = {
        "title": "with image",
        "body": "b",
        "tags": "x",
        "image": (io.BytesIO(image_bytes()), "a.png"),
    }
    assert client.post("/create", data=data).status_code == 302
    target = migrated(tmp_path, "target.sqlite")
    result = app.test_cli_runner().invoke(args=["copy-db", "--to", target])
    assert result.exit_code == 0, result.output
    assert "post: 2 rows" in result.output and "image: 1 rows" in result.output
    assert "counts verified" in result.output
    copy = create_app(config_for(tmp_path, DATABASE_URL=target))
    with app.app_context():
        image = db.session.scalar(select(Image.data))
    with copy.app_context():
        assert db.session.scalar(select(func.count()).select_from(Post)) == 2
        assert db.session.scalar(select(Image.data)) == image
        assert db.session.scalar(select(User.username).where(User.id == 1)) == "test"
    # Copied once: a second copy would mix rows, so it is refused.
    again = app.test_cli_runner().invoke(args=["copy-db", "--to", target])
    assert again.exit_code == 1 and "already holds rows" in again.output


def test_copy_db_needs_a_migrated_target(app, tmp_path) -> None:
    target = f"sqlite:///{tmp_path / 'bare.sqlite'}"
    result = app.test_cli_runner().invoke(args=["copy-db", "--to", target])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "is at schema revision None" in result.output and "init-db" in result.output


def test_copy_db_reports_a_target_it_cannot_reach(app) -> None:
    result = app.test_cli_runner().invoke(args=["copy-db", "--to", "sqlite:////nonexistent/x/y"])
    assert result.exit_code == 1 and "failed, nothing was kept" in result.output


# --- the target's password: never on the command line ------------------------------------
SECRET = "s3cret-Pw-on-argv"


def test_a_target_url_holding_a_password_is_refused_and_never_echoed(app) -> None:
    for url in (
        f"postgresql://flaskr:{SECRET}@127.0.0.1:1/flaskr",
        f"postgres://flaskr:{SECRET}@db.example.org/flaskr",
        f"postgresql://flaskr:{SECRET}@db.example.org:notaport/flaskr",
        f"not a url {SECRET}",
    ):
        result = app.test_cli_runner().invoke(args=["copy-db", "--to", url])
        assert result.exit_code == 1, (url, result.output)
        assert SECRET not in result.output and "Traceback" not in result.output
    refused = app.test_cli_runner().invoke(
        args=["copy-db", "--to", f"postgresql://flaskr:{SECRET}@127.0.0.1:1/flaskr"]
    )
    assert "holds a password, which every local user can read" in refused.output
    assert "postgresql+psycopg://flaskr:***@127.0.0.1:1/flaskr" in refused.output
    assert "--password-file FILE" in refused.output and "chmod 600" in refused.output


def password_file(tmp_path, mode: int, content: str = SECRET + "\n"):
    path = tmp_path / "target-password"
    path.write_text(content)
    path.chmod(mode)
    return path


def test_a_password_file_others_may_read_is_refused(app, tmp_path) -> None:
    target = migrated(tmp_path, "target.sqlite")
    for mode in (0o644, 0o640, 0o604, 0o660):
        path = password_file(tmp_path, mode)
        result = app.test_cli_runner().invoke(
            args=["copy-db", "--to", target, "--password-file", str(path)]
        )
        assert result.exit_code == 1, result.output
        assert f"is mode {mode:04o}: others than its owner may read it" in result.output
        assert f"chmod 600 {path}" in result.output and SECRET not in result.output
    (tmp_path / "folder").mkdir(mode=0o700)
    for path in (tmp_path / "folder", tmp_path / "missing"):
        result = app.test_cli_runner().invoke(
            args=["copy-db", "--to", target, "--password-file", str(path)]
        )
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    empty = password_file(tmp_path, 0o600, "\n")
    result = app.test_cli_runner().invoke(
        args=["copy-db", "--to", target, "--password-file", str(empty)]
    )
    assert result.exit_code == 1 and "is empty" in result.output


def engines_made(monkeypatch) -> list:
    """The URLs copy-db makes its target's engines with (the real engines are made)."""
    from flaskr import copy_db

    made = []
    real = copy_db.create_engine

    def recording(url, *args, **kwargs):
        made.append(url)
        if url.get_backend_name() == "sqlite":  # which takes no password
            url = url._replace(password=None)
        return real(url, *args, **kwargs)

    monkeypatch.setattr(copy_db, "create_engine", recording)
    return made


def test_a_private_password_file_gives_the_target_its_password(app, tmp_path, monkeypatch):
    """SQLite takes no password, so the copy runs as before; the URL its engine is made with
    carries the file's first line as the password (what psycopg hands to libpq)."""
    made = engines_made(monkeypatch)
    target = migrated(tmp_path, "target.sqlite")
    path = password_file(tmp_path, 0o600, SECRET + "\nignored\n")
    result = app.test_cli_runner().invoke(
        args=["copy-db", "--to", target, "--password-file", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert "counts verified" in result.output and SECRET not in result.output
    assert [url.password for url in made] == [SECRET]
    monkeypatch.undo()  # the real engine: SQLite's driver refuses a password, said plainly
    again = app.test_cli_runner().invoke(
        args=["copy-db", "--to", target, "--password-file", str(path)]
    )
    assert again.exit_code == 1 and "Invalid SQLite URL" in again.output, again.output
    assert SECRET not in again.output and "Traceback" not in again.output


def test_the_host_command_hands_the_password_over_as_a_credential(app, tmp_path, monkeypatch):
    """`sudo flaskr copy-db --password-file FILE` (deploy/systemd/flaskr-command) has systemd
    copy FILE into the command's credentials (LoadCredential=copy_db_password:FILE)."""
    made = engines_made(monkeypatch)
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    password_file(credentials, 0o400).rename(credentials / "copy_db_password")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    target = migrated(tmp_path, "target.sqlite")
    result = app.test_cli_runner().invoke(args=["copy-db", "--to", target])
    assert result.exit_code == 0, result.output
    assert [url.password for url in made] == [SECRET]


def test_a_password_the_server_asks_for_is_asked_at_a_terminal(monkeypatch) -> None:
    """No password anywhere libpq looks, and a person at a terminal: copy-db asks (hidden)."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import OperationalError

    from flaskr import copy_db

    made, asked = [], []

    class Engine:
        def __init__(self, url) -> None:
            self.url = url

        def connect(self):
            raise OperationalError("connect", {}, Exception("fe_sendauth: no password supplied"))

        def dispose(self) -> None:
            pass

    monkeypatch.setattr(copy_db, "create_engine", lambda url: made.append(url) or Engine(url))
    monkeypatch.setattr(copy_db.sys.stdin, "isatty", lambda: True, raising=False)

    def prompt(text: str, hide_input: bool) -> str:
        asked.append((text, hide_input))
        return SECRET

    monkeypatch.setattr(copy_db.click, "prompt", prompt)
    engine = copy_db.connect_target(make_url("postgresql+psycopg://flaskr@db.example.org/x"))
    assert asked == [("Password for postgresql+psycopg://flaskr@db.example.org/x", True)]
    assert engine.url.password == SECRET and [u.password for u in made] == [None, SECRET]


def test_a_password_the_server_asks_for_without_a_terminal_says_how_to_give_it(
    app, monkeypatch
) -> None:
    """`echo PASS | flaskr copy-db --to URL`: nothing is read from the pipe, and the error names
    the ways to give a password, not libpq's "no password supplied"."""
    from sqlalchemy.exc import OperationalError

    from flaskr import copy_db

    class Engine:
        def connect(self):
            raise OperationalError("connect", {}, Exception("fe_sendauth: no password supplied"))

        def dispose(self) -> None:
            pass

    monkeypatch.setattr(copy_db, "create_engine", lambda url: Engine())
    result = app.test_cli_runner().invoke(
        args=["copy-db", "--to", "postgresql://flaskr@127.0.0.1/flaskr"], input="PASS\n"
    )
    assert result.exit_code == 1, result.output
    assert "there is no terminal to ask it at" in result.output, result.output
    assert "--password-file FILE" in result.output and "PGPASSFILE" in result.output
    assert "fe_sendauth" not in result.output and "sqlalche.me" not in result.output


def flaskr_command():
    """deploy/systemd/flaskr-command (installed as /usr/local/bin/flaskr), as a module."""
    import importlib.machinery
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "deploy/systemd/flaskr-command"
    loader = importlib.machinery.SourceFileLoader("flaskr_command", str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def test_sudo_flaskr_copy_db_hands_a_root_only_password_file_to_systemd(tmp_path) -> None:
    """The service's user cannot read a file only root may: systemd reads it for the command
    (LoadCredential=), and the command line holds neither the option nor the password."""
    command = flaskr_command()
    path = password_file(tmp_path, 0o600)
    for given in (["--password-file", str(path)], [f"--password-file={path}"]):
        args = ["copy-db", "--to", "postgresql://flaskr@db/flaskr", *given]
        assert command.hand_over_password_file(args) == (
            ["copy-db", "--to", "postgresql://flaskr@db/flaskr"],
            [f"--property=LoadCredential=copy_db_password:{path}"],
        )
    other = ["create-user", "--password-file", "x"]
    assert command.hand_over_password_file(other) == (other, [])
    path.chmod(0o644)
    with pytest.raises(SystemExit) as refused:
        command.hand_over_password_file(["copy-db", "--password-file", str(path)])
    assert f"chmod 600 {path}" in str(refused.value)
    with pytest.raises(SystemExit) as refused:
        command.hand_over_password_file(["copy-db", "--password-file", str(tmp_path)])
    assert "not a regular file" in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://flaskr@127.0.0.1:1/flaskr?password={SECRET}",
        f"postgresql://flaskr@127.0.0.1:1/flaskr?PASSWORD={SECRET}",
        f"postgresql:///flaskr?host=127.0.0.1&port=1&user=flaskr&password={SECRET}",
        f"postgresql://flaskr@127.0.0.1:1/flaskr?sslmode=require&sslpassword={SECRET}",
        f"postgresql://flaskr@127.0.0.1:1/flaskr?pass%77ord={SECRET}",  # decoded: password
        f"postgresql://flaskr@127.0.0.1:1/flaskr?passwd={SECRET}&password={SECRET}",
    ],
)
def test_a_password_in_the_target_urls_query_is_refused_and_never_echoed(app, url) -> None:
    """libpq takes a password in the query too (psycopg hands it on): it was used, and the
    error printed the URL with it, render_as_string(hide_password=True) hiding only the one
    before the host."""
    result = app.test_cli_runner().invoke(args=["copy-db", "--to", url])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert SECRET not in result.output, result.output
    assert "holds a password in ?" in result.output and "which every local user" in result.output
    assert "--password-file FILE" in result.output


def test_a_passfile_is_no_password(app) -> None:
    """libpq's passfile names a file (~/.pgpass's format): allowed, as PGPASSFILE is."""
    from flaskr.copy_db import checked_url, shown_url

    url = checked_url("postgresql://flaskr@db/flaskr?passfile=/etc/flaskr/pgpass&sslmode=require")
    assert url.query["passfile"] == "/etc/flaskr/pgpass"
    assert shown_url(url) == "postgresql+psycopg://flaskr@db/flaskr?passfile=***&sslmode=***"


@pytest.mark.parametrize(
    ("query", "why"),
    [
        (f"sslmode={SECRET}", "invalid sslmode value"),  # libpq quotes the value
        (f"connect_timeout={SECRET}", "connect_timeout"),
        (f"application_name={SECRET}", "failed, nothing was kept"),
    ],
)
def test_no_message_prints_a_value_of_the_target_urls_query(app, query, why) -> None:
    """Whatever a query holds stays out of every message: the URL shows its values as ***,
    and an error quoting one (libpq's, SQLAlchemy's) has it masked."""
    result = app.test_cli_runner().invoke(
        args=["copy-db", "--to", f"postgresql://flaskr@127.0.0.1:1/flaskr?{query}"]
    )
    assert result.exit_code == 1 and why in result.output, result.output
    assert SECRET not in result.output and "Traceback" not in result.output, result.output
    name = query.split("=")[0]
    assert f"copying into postgresql+psycopg://flaskr@127.0.0.1:1/flaskr?{name}=***" in (
        result.output
    )


def test_the_migrate_first_hint_prints_no_query_value(app, tmp_path) -> None:
    target = f"sqlite:///{tmp_path / 'bare.sqlite'}?cache={SECRET}&uri=true"
    result = app.test_cli_runner().invoke(args=["copy-db", "--to", target])
    assert result.exit_code == 1 and "Migrate the target first" in result.output, result.output
    assert SECRET not in result.output and "?cache=***&uri=***" in result.output


def test_an_error_never_repeats_the_password_or_a_query_value() -> None:
    from sqlalchemy import make_url

    from flaskr.copy_db import scrubbed

    url = make_url("postgresql+psycopg://u@h/d?sslmode=a%20b&port=5").set(password="p w/1")
    said = 'pw p w/1 p%20w%2F1 p+w%2F1: "a b" a+b a%20b; port 5432 5 s'
    assert scrubbed(said, url) == 'pw *** *** ***: "***" *** ***; port 5432 *** s'
