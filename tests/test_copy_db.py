import io

from sqlalchemy import func, select

from flaskr import create_app
from flaskr.db import db, upgrade_schema
from flaskr.models import Image, Post, User
from tests.helpers import config_for, image_bytes


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
