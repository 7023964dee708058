"""A number the database raises on every change to what pages show.

With it each worker may keep whole pages for visitors and know, with one read, whether they
still hold (page_cache).

Triggers, not application code, raise it: every writer (another worker, another instance,
the CLI, plain SQL) is seen. On PostgreSQL the triggers run before each statement, so a
writing transaction takes the row's lock before any row lock in the tables they watch:
writers queue on that one row rather than wait for each other's rows in opposite orders.

Revision ID: 0006_content_version
Revises: 0005_title_search_index
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_content_version"
down_revision = "0005_title_search_index"
branch_labels = None
depends_on = None

#: The tables whose rows some page shows.
SHOWN = ("user", "post", "tag", "post_tag", "comment", "post_like", "image")
BUMP = "UPDATE content_version SET version = version + 1 WHERE id = 1"


def upgrade():
    op.create_table(
        "content_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO content_version (id, version) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION content_changed() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for name in SHOWN:
            op.execute(
                "CREATE TRIGGER content_changed BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE"
                f' ON "{name}" FOR EACH STATEMENT EXECUTE FUNCTION content_changed()'
            )
        return
    for name in SHOWN:  # SQLite: row triggers only; its one writer at a time cannot deadlock
        for event in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f'CREATE TRIGGER content_changed_{name}_{event.lower()} AFTER {event} ON "{name}" '
                f"BEGIN {BUMP}; END"
            )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name in SHOWN:
            op.execute(f'DROP TRIGGER IF EXISTS content_changed ON "{name}"')
        op.execute("DROP FUNCTION IF EXISTS content_changed()")
    else:
        for name in SHOWN:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS content_changed_{name}_{event}")
    op.drop_table("content_version")
