"""Failed logins, kept in the database so throttling holds across workers and instances.

Revision ID: 0003_login_failure
Revises: 0002_blog_features
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_login_failure"
down_revision = "0002_blog_features"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "login_failure",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("remote_addr", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_login_failure_username", "login_failure", ["username"])
    op.create_index("ix_login_failure_remote_addr", "login_failure", ["remote_addr"])
    op.create_index("ix_login_failure_created", "login_failure", ["created"])


def downgrade():
    op.drop_table("login_failure")
