import logging
import warnings
from logging.config import fileConfig

from alembic import context
from alembic.util import CommandError
from flask import current_app

from flaskr.logs import for_logs, json_root_handlers

# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config = context.config

# Interpret the config file for Python logging.
# This line sets up loggers basically.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
if for_logs(current_app):
    json_root_handlers()  # one format in a deployment's logs
logger = logging.getLogger("alembic.env")


target_db = current_app.extensions["migrate"].db


def include_name(name, type_, parent_names):
    """Leave out of comparisons the title search index of migration 0005.

    The models do not describe it: the FTS5 table with its shadow tables, and the pg_trgm index.
    """
    if type_ == "table":
        return not (name or "").startswith("post_search")
    return name != "ix_post_title_trgm"


def include_object(object_, name, type_, reflected, compare_to):
    """Leave the index on lower(username) of 0007 out on both sides.

    SQLite's reflection cannot read an expression back (tests/test_auth.py checks that the
    index holds).
    """
    return name != "uq_user_username_lower"


# SQLite cannot reflect uq_user_username_lower (an expression), and both libraries say so.
warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based")
warnings.filterwarnings("ignore", message="autogenerate skipping metadata-specified expression")


def run_migrations_online():
    """Run migrations in 'online' mode.

    In this scenario we need to create an Engine
    and associate a connection with the context.

    """

    def process_revision_directives(context, revision, directives):
        """`flask db migrate` with nothing to migrate writes no empty script."""
        if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
            directives[:] = []
            logger.info("No changes in schema detected.")

    # A new dict each run: the app's configure_args outlive this run (the app is built once and
    # may run several commands), and a callback kept there would read an earlier run's config.
    conf_args = {
        "process_revision_directives": process_revision_directives,
        "include_name": include_name,
        "include_object": include_object,
        **current_app.extensions["migrate"].configure_args,
    }

    connectable = target_db.engine

    with connectable.connect() as connection:
        if connection.dialect.name == "sqlite":
            # Batch migrations copy tables; with foreign keys on, dropping the old copy of a
            # referenced table would fail. The pragma only works outside a transaction.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(connection=connection, target_metadata=target_db.metadata, **conf_args)

        with context.begin_transaction():
            context.run_migrations()

        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")  # back to the app's setting
            connection.commit()


if context.is_offline_mode():
    # Several revisions read and rewrite rows (0007, 0010), which no SQL script can do ahead.
    raise CommandError(
        "flaskr's migrations move data, so they run against a database: "
        "use `flask --app flaskr init-db` (or `flask db upgrade`) without --sql."
    )
run_migrations_online()
