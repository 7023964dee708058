"""Posts and comments keep the HTML their body was rendered to, and what rendered it.

Pages show the stored HTML and never render Markdown (flaskr/rendering.py, flaskr/bodies.py).
The columns start empty: ``flask init-db``, which runs this migration, renders the existing
bodies right after it, and shows how many (a body without HTML is shown as plain text).

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


def downgrade():
    # ALTER TABLE ... DROP COLUMN on SQLite too (3.35 and later): a batch copy of the table
    # would lose its triggers (migrations 0005 and 0006).
    for table in TABLES:
        op.drop_column(table, "rendered_with")
        op.drop_column(table, "body_html")
