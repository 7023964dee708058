"""flaskr/migrations/: every revision goes down and up again, and Alembic's other entry points
answer clearly. (Upgrading old databases in place is in test_db.py; PostgreSQL's branches run in
tests/e2e/test_postgres.py.)"""

from pathlib import Path

from sqlalchemy import inspect

from flaskr import create_app
from flaskr.db import MIGRATIONS, db, head_revision, schema_revision
from tests.test_db import TEXT_LOGS


def test_every_revision_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    """A release that must be rolled back can take the schema back with it, step by step."""
    app = create_app(TEXT_LOGS)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["init-db"]).exit_code == 0
    down = runner.invoke(args=["db", "downgrade", "-d", MIGRATIONS, "base"])
    assert down.exit_code == 0, down.output
    with app.app_context():
        assert schema_revision() is None
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    up = runner.invoke(args=["db", "upgrade", "-d", MIGRATIONS])
    assert up.exit_code == 0, up.output
    with app.app_context():
        assert schema_revision() == head_revision()
    check = runner.invoke(args=["db", "check", "-d", MIGRATIONS])
    assert check.exit_code == 0, check.output  # the same schema as the models again


def test_an_sql_script_instead_of_a_database_is_refused_in_one_line(app, capfd) -> None:
    """Revisions that rewrite rows cannot be written out as SQL ahead of time: say so."""
    result = app.test_cli_runner().invoke(args=["db", "upgrade", "-d", MIGRATIONS, "--sql"])
    assert result.exit_code == 1
    said = result.output + "".join(capfd.readouterr())
    assert "Error: flaskr's migrations move data, so they run against a database" in said
    assert "Traceback" not in said


def test_autogenerate_writes_nothing_while_the_models_match() -> None:
    """`flask db migrate` after a change that needs no migration leaves no empty script."""
    versions = Path(MIGRATIONS) / "versions"
    before = set(versions.glob("*.py"))
    runner = create_app(TEXT_LOGS).test_cli_runner()
    assert runner.invoke(args=["init-db"]).exit_code == 0
    try:
        result = runner.invoke(args=["db", "migrate", "-d", MIGRATIONS])
        written = set(versions.glob("*.py")) - before
        assert not written, [p.read_text() for p in written]
    finally:
        for script in set(versions.glob("*.py")) - before:  # never leave one in the checkout
            script.unlink()
    assert result.exit_code == 0, result.output
    assert "No changes in schema detected." in result.output
