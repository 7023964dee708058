"""Backups: ``flask backup`` and ``flask restore``, for SQLite and PostgreSQL.

``flask backup`` writes a consistent, compressed copy of the database while the site serves
and writes; ``flask restore`` checks one and puts it back, keeping the current database aside
first. SQLite through its online backup API (``sqlite.py``), PostgreSQL through
pg_dump/pg_restore (``postgresql.py``); names, folders and private files in ``files.py``;
``make.py`` writes one backup, ``restore.py`` runs a restore's steps. The commands are in
``flaskr/commands.py``.
"""

from flaskr.backup.files import NAME, backup_folder, backups_in, prune
from flaskr.backup.make import emit, make_backup
from flaskr.backup.restore import quiet_migrations, restore
from flaskr.backup.sqlite import MAX_UNPACKED_MB, progress_line

__all__ = [
    "MAX_UNPACKED_MB",
    "NAME",
    "backup_folder",
    "backups_in",
    "emit",
    "make_backup",
    "progress_line",
    "prune",
    "quiet_migrations",
    "restore",
]
