"""Registrations, kept in the database so throttling holds across workers and instances.

Each registration is counted per address and for the whole site within a window
(throttle.py), so one address cannot create accounts without limit.

Revision ID: 0009_registration_attempt
Revises: 0008_login_attempt_device
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_registration_attempt"
down_revision = "0008_login_attempt_device"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "registration_attempt",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("remote_addr", sa.String(64), nullable=False),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_registration_attempt_remote_addr", "registration_attempt", ["remote_addr"])
    op.create_index("ix_registration_attempt_network", "registration_attempt", ["network"])
    op.create_index("ix_registration_attempt_created", "registration_attempt", ["created"])


def downgrade():
    op.drop_table("registration_attempt")
