"""Posts and comments keep the HTML their body was rendered to, and what rendered it.

Pages show the stored HTML and never render Markdown (flaskr/rendering.py, flaskr/bodies.py).
The columns start empty: ``flask init-db``, which runs this migration, renders the existing
bodies right after it, and shows how many (a body without HTML is shown as plain text).

A body changed without its HTML (plain SQL, an older release of the app during a rolling
upgrade) would go on showing the old HTML. The app writes a new ``rendered_with`` with every
body it renders; a trigger empties ``body_html`` and ``rendered_with`` when ``body`` changes
and ``rendered_with`` does not, so the new text shows at once, as plain text, until ``flask
init-db`` renders it.

Revision ID: 0010_stored_html
Revises: 0009_registration_attempt
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_stored_html"
down_revision = "0009_registration_attempt"
branch_labels = None
depends_on = None

TABLES = ("post", "comment")


def upgrade():
    for table in TABLES:
        op.add_column(table, sa.Column("body_html", sa.Text(), nullable=True))
        op.add_column(table, sa.Column("rendered_with", sa.String(64), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION body_edited() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF NEW.rendered_with IS NOT DISTINCT FROM OLD.rendered_with"
            " AND NEW.body IS DISTINCT FROM OLD.body"
            " THEN NEW.body_html := NULL; NEW.rendered_with := NULL; END IF;"
            " RETURN NEW; END $$"
        )
        for table in TABLES:
            op.execute(
                f'CREATE TRIGGER body_edited BEFORE UPDATE OF body ON "{table}"'
                " FOR EACH ROW EXECUTE FUNCTION body_edited()"
            )
        return
    for table in TABLES:  # names from TABLES above, not from input
        empty = f'UPDATE "{table}" SET body_html = NULL, rendered_with = NULL'  # noqa: S608  # nosec B608
        op.execute(
            f'CREATE TRIGGER body_edited_{table} AFTER UPDATE OF body ON "{table}"'
            " WHEN NEW.rendered_with IS OLD.rendered_with AND NEW.body IS NOT OLD.body"
            f" BEGIN {empty} WHERE id = NEW.id; END"
        )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f'DROP TRIGGER IF EXISTS body_edited ON "{table}"')
        op.execute("DROP FUNCTION IF EXISTS body_edited()")
    else:
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS body_edited_{table}")
    # ALTER TABLE ... DROP COLUMN on SQLite too (3.35 and later): a batch copy of the table
    # would lose its triggers (migrations 0005 and 0006).
    for table in TABLES:
        op.drop_column(table, "rendered_with")
        op.drop_column(table, "body_html")
