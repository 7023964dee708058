"""Passkeys (WebAuthn): the credentials each account registered.

- ``passkey``: one row per credential: its id (base64url, unique over the whole site, as
  the browser names it at sign-in), its COSE public key, the sign count it last reported
  (a count that does not go up marks a clone), the name its owner gave it, when it was
  added and last used (flaskr/passkeys.py).

Revision ID: 0014_passkeys
Revises: 0013_second_factor
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_passkeys"
down_revision = "0013_second_factor"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "passkey",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("user.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("credential_id", sa.Text(), nullable=False, unique=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "created", sa.DateTime(), nullable=False, server_default=sa.func.current_timestamp()
        ),
        sa.Column("last_used", sa.DateTime(), nullable=True),
    )


def downgrade():
    op.drop_table("passkey")
