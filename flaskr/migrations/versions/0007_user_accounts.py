"""Accounts: one name per person whatever its case, sessions that end, accounts disabled.

- A unique index on ``lower(username)``: ``Alice`` and ``alice`` are one name. A database
  that already holds names differing only in case (the tutorial never prevented it) still
  upgrades: the oldest account keeps its name, each later one becomes ``name-ID`` (its id, so
  the new name is free), and the renames are logged. Those users log in with the new name.
- ``session_version``: a session holds the number it was issued with; raising it ends every
  session of that user at once (logout, password change, disabling).
- ``disabled``: set by an admin; such an account can neither log in nor stay logged in.
- The content-version triggers of 0006 on ``user`` now fire only when a name changes (the one
  column pages show), so logins, logouts and password changes keep cached pages.

Revision ID: 0007_user_accounts
Revises: 0006_content_version
Create Date: 2026-11-30
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0007_user_accounts"
down_revision = "0006_content_version"
branch_labels = None
depends_on = None

BUMP = "UPDATE content_version SET version = version + 1 WHERE id = 1"
log = logging.getLogger("alembic.runtime.migration")


def rename_case_clashes(connection: sa.Connection) -> list[tuple[str, str]]:
    """Give every account but the oldest of each case-insensitive name a free name."""
    user = sa.table("user", sa.column("id", sa.Integer), sa.column("username", sa.Text))
    lowered = sa.func.lower(user.c.username)
    clashing = sa.select(lowered).group_by(lowered).having(sa.func.count() > 1).scalar_subquery()
    rows = connection.execute(
        sa.select(user.c.id, user.c.username).where(lowered.in_(clashing)).order_by(user.c.id)
    ).all()
    kept: set[str] = set()
    renamed = []
    for id_, name in rows:
        key = connection.execute(sa.select(sa.func.lower(sa.literal(name)))).scalar_one()
        if key not in kept:
            kept.add(key)
            continue
        new, n = f"{name}-{id_}", 1
        while connection.execute(
            sa.select(user.c.id).where(lowered == sa.func.lower(sa.literal(new)))
        ).first():
            n += 1
            new = f"{name}-{id_}-{n}"
        connection.execute(sa.update(user).where(user.c.id == id_).values(username=new))
        renamed.append((name, new))
        log.warning(
            "user %r renamed to %r: the name differs from an older one only in case", name, new
        )
    return renamed


def upgrade():
    connection = op.get_bind()
    rename_case_clashes(connection)
    op.create_index("uq_user_username_lower", "user", [sa.text("lower(username)")], unique=True)
    op.add_column(
        "user",
        sa.Column("session_version", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "user", sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    if connection.dialect.name == "postgresql":
        op.execute('DROP TRIGGER content_changed ON "user"')
        op.execute(
            "CREATE TRIGGER content_changed BEFORE INSERT OR UPDATE OF username OR DELETE OR "
            'TRUNCATE ON "user" FOR EACH STATEMENT EXECUTE FUNCTION content_changed()'
        )
    else:
        op.execute("DROP TRIGGER content_changed_user_update")
        op.execute(
            'CREATE TRIGGER content_changed_user_update AFTER UPDATE OF username ON "user" '
            f"BEGIN {BUMP}; END"
        )


def downgrade():
    op.drop_index("uq_user_username_lower", "user")
    with op.batch_alter_table("user") as batch:  # SQLite copies the table: triggers go too
        batch.drop_column("disabled")
        batch.drop_column("session_version")
    if op.get_bind().dialect.name == "postgresql":
        op.execute('DROP TRIGGER content_changed ON "user"')
        op.execute(
            "CREATE TRIGGER content_changed BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE"
            ' ON "user" FOR EACH STATEMENT EXECUTE FUNCTION content_changed()'
        )
        return
    for event in ("INSERT", "UPDATE", "DELETE"):
        op.execute(f"DROP TRIGGER IF EXISTS content_changed_user_{event.lower()}")
        op.execute(
            f'CREATE TRIGGER content_changed_user_{event.lower()} AFTER {event} ON "user" '
            f"BEGIN {BUMP}; END"
        )
