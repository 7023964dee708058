"""flaskr.reads: the per-request reads on the driver's cursor fail as SQLAlchemy's errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy import literal, select
from sqlalchemy.exc import OperationalError

from flaskr import create_app
from flaskr.db import db
from flaskr.reads import first_row
from toolkit.apps import config_for


@pytest.fixture
def unreachable_postgresql(tmp_path: Path):
    """An app whose PostgreSQL is down: a port on 127.0.0.1 where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://flaskr@127.0.0.1:{port}/flaskr?connect_timeout=2"
    app = create_app(config_for(tmp_path, DATABASE_URL=url, PROPAGATE_EXCEPTIONS=False))
    yield app
    with app.app_context():
        db.engine.dispose()


def test_first_row_reads_one_row(app) -> None:
    with app.app_context():
        assert first_row(select(literal(7))) == (7,)
        assert first_row(select(literal(7)).where(literal(1) == 0)) is None


def test_a_database_that_is_down_is_sqlalchemys_error(unreachable_postgresql) -> None:
    """Connecting fails inside first_row: the driver's error comes out as SQLAlchemy's, which
    the app answers with a 503, not as psycopg's, which would be a 500."""
    with unreachable_postgresql.app_context(), pytest.raises(OperationalError):
        first_row(select(literal(1)))


def test_a_visitor_gets_503_while_the_database_is_down(unreachable_postgresql) -> None:
    response = unreachable_postgresql.test_client().get("/")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
