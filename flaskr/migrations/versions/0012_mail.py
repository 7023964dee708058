"""E-mail: an optional address per account, an outbox, and mail requests counted.

- ``user.email``: optional, one account per address whatever its case (a unique index on
  ``lower(email)``; any number of accounts have none).
- ``mail_outbox``: every message the site sends, written in the request's transaction and
  sent by ``flask send-mail`` (flaskr/mail.py).
- ``mail_request``: requests that may send mail, counted to bound them (flaskr/throttle.py).

Revision ID: 0012_mail
Revises: 0011_render_cost
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_mail"
down_revision = "0011_render_cost"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("user", sa.Column("email", sa.Text(), nullable=True))
    op.create_index("uq_user_email_lower", "user", [sa.text("lower(email)")], unique=True)
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("next_attempt", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("claimed_by", sa.String(32), nullable=True),
        sa.Column("claimed_until", sa.DateTime(), nullable=True),
        sa.Column("sent", sa.DateTime(), nullable=True),
        sa.Column("failed", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_index("ix_mail_outbox_next_attempt", "mail_outbox", ["next_attempt"])
    op.create_index("ix_mail_outbox_sent", "mail_outbox", ["sent"])
    op.create_table(
        "mail_request",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("remote_addr", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
    )
    for column in ("account", "recipient", "remote_addr", "created"):
        op.create_index(f"ix_mail_request_{column}", "mail_request", [column])


def downgrade():
    op.drop_table("mail_request")
    op.drop_table("mail_outbox")
    op.drop_index("uq_user_email_lower", "user")
    op.drop_column("user", "email")  # SQLite 3.35+ drops an unindexed column in place
