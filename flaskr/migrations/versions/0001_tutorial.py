"""The Flask tutorial's schema.sql, exactly: user and post.

A database made by the tutorial is stamped at this revision and upgraded from here.

Revision ID: 0001_tutorial
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_tutorial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.Text(), nullable=False, unique=True),
        sa.Column("password", sa.Text(), nullable=False),
    )
    op.create_table(
        "post",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("author_id", sa.Integer(), sa.ForeignKey("user.id"), nullable=False),
        sa.Column(
            "created", sa.DateTime(), nullable=False, server_default=sa.func.current_timestamp()
        ),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
    )


def downgrade():
    op.drop_table("post")
    op.drop_table("user")
