"""Failed logins remember the trusted device they came from, if any.

A browser that has logged in to an account before is counted on its own, so strangers
guessing cannot lock it out.

Revision ID: 0008_login_attempt_device
Revises: 0007_user_accounts
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_login_attempt_device"
down_revision = "0007_user_accounts"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("login_failure", sa.Column("device", sa.String(32), nullable=True))
    op.create_index("ix_login_failure_device", "login_failure", ["device"])


def downgrade():
    op.drop_index("ix_login_failure_device", "login_failure")
    with op.batch_alter_table("login_failure") as batch:
        batch.drop_column("device")
