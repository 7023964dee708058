"""Admins: users who may see operator pages (set with `flask make-admin`).

Revision ID: 0004_user_is_admin
Revises: 0003_login_failure
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_user_is_admin"
down_revision = "0003_login_failure"
branch_labels = None
depends_on = None


def upgrade():
    # A plain ADD COLUMN (no table copy): SQLite allows NOT NULL with a constant default.
    op.add_column(
        "user", sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade():
    with op.batch_alter_table("user") as batch:
        batch.drop_column("is_admin")
