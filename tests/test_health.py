from pathlib import Path

from flaskr import create_app
from flaskr.db import MIGRATIONS, db, head_revision
from toolkit.apps import config_for


def test_healthz(client) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_when_migrated(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "schema": head_revision()}
    newest = max(p.stem for p in Path(MIGRATIONS, "versions").glob("0*.py"))
    assert head_revision() == newest


def test_readyz_before_migrations(tmp_path: Path) -> None:
    app = create_app(config_for(tmp_path))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert "run flask init-db" in response.get_json()["reason"]


def test_readyz_when_database_is_gone(tmp_path: Path) -> None:
    app = create_app(config_for(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path}/no/such/dir/x"))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["reason"] == "database unavailable"
    with app.app_context():
        db.engine.dispose()
