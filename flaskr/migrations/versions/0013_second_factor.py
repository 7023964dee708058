"""A second factor: a TOTP secret per account and its single-use recovery codes.

- ``user.totp_secret``: the RFC 6238 secret (base32) once enrolment is confirmed; None
  without a second factor.
- ``user.totp_last_step``: the time step of the last code accepted, so no code is accepted
  twice (flaskr/second_factor.py).
- ``recovery_code``: the sha256 of each unused recovery code; a used one is deleted.

Revision ID: 0013_second_factor
Revises: 0012_mail
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_second_factor"
down_revision = "0012_mail"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("user", sa.Column("totp_secret", sa.Text(), nullable=True))
    op.add_column("user", sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    op.create_table(
        "recovery_code",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("user.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("code_hash", sa.String(64), nullable=False),
    )


def downgrade():
    op.drop_table("recovery_code")
    op.drop_column("user", "totp_last_step")  # SQLite 3.35+ drops unindexed columns in place
    op.drop_column("user", "totp_secret")
