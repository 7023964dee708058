"""The CPU time each user's Markdown renders take, so that no account keeps workers busy.

Revision ID: 0011_render_cost
Revises: 0010_stored_html
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_render_cost"
down_revision = "0010_stored_html"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "render_cost",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "user_id", sa.Integer(), sa.ForeignKey("user.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("cpu_ms", sa.Integer(), nullable=False),
    )
    op.create_index("ix_render_cost_user_id", "render_cost", ["user_id"])
    op.create_index("ix_render_cost_created", "render_cost", ["created"])


def downgrade():
    op.drop_table("render_cost")
