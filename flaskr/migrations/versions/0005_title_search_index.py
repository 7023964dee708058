"""An index for title search, so a word found in few posts costs the same as one in many.

SQLite: a contentless FTS5 table with the trigram tokenizer over post titles, kept in step by
triggers. Its rowids are the posts' ids negated: FTS5 reads matches lazily in ascending
rowid order only, and listings want the newest first (`python -m bench.in_process --search-index`
times both orders). PostgreSQL: a pg_trgm GIN index on post.title.
Without FTS5, or without the right to create pg_trgm, the migration adds nothing and search
scans titles as before (listing.titles_containing): slower at scale, same results.

A later batch migration of ``post`` (table copy) drops the SQLite triggers with the old table;
it must create them again (TRIGGERS below).

Revision ID: 0005_title_search_index
Revises: 0004_user_is_admin
Create Date: 2026-11-25
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0005_title_search_index"
down_revision = "0004_user_is_admin"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

#: A contentless table forgets a row only when told its old values ('delete').
TRIGGERS = (
    """CREATE TRIGGER post_search_insert AFTER INSERT ON post BEGIN
         INSERT INTO post_search (rowid, title) VALUES (-new.id, new.title);
       END""",
    """CREATE TRIGGER post_search_delete AFTER DELETE ON post BEGIN
         INSERT INTO post_search (post_search, rowid, title) VALUES ('delete', -old.id, old.title);
       END""",
    """CREATE TRIGGER post_search_update AFTER UPDATE OF id, title ON post BEGIN
         INSERT INTO post_search (post_search, rowid, title) VALUES ('delete', -old.id, old.title);
         INSERT INTO post_search (rowid, title) VALUES (-new.id, new.title);
       END""",
)


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        try:
            op.execute(
                "CREATE VIRTUAL TABLE post_search USING fts5(title, content='', tokenize='trigram')"
            )
        except sa.exc.OperationalError as error:  # an SQLite built without FTS5 or trigram
            log.warning("No title search index (%s): search will scan titles.", error.orig)
            return
        for trigger in TRIGGERS:
            op.execute(trigger)
        op.execute("INSERT INTO post_search (rowid, title) SELECT -id, title FROM post")
    elif bind.dialect.name == "postgresql":
        savepoint = bind.begin_nested()
        try:
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except sa.exc.DBAPIError as error:  # not installed, or not ours to create
            savepoint.rollback()
            log.warning("No title search index (%s): search will scan titles.", error.orig)
            return
        savepoint.commit()
        op.execute("CREATE INDEX ix_post_title_trgm ON post USING gin (title gin_trgm_ops)")


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        for name in ("post_search_insert", "post_search_delete", "post_search_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS post_search")
    else:
        op.execute("DROP INDEX IF EXISTS ix_post_title_trgm")
