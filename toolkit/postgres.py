"""A throwaway PostgreSQL cluster from Debian's packages: owned by the ``postgres`` user,
listening on 127.0.0.1 only (and a private socket folder), with its data in a temporary folder
removed afterwards. It can be stopped and started again on the same port and data, as a
database restart under load needs."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from toolkit.packages import need
from toolkit.ports import free_port


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder, if there is one."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class Postgres:
    """A cluster on 127.0.0.1:PORT with one database, ``flaskr``."""

    def __init__(self, port: int) -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            need("postgresql")
            bin_dir = postgres_bin()
        assert bin_dir is not None, "PostgreSQL's initdb is missing after installing postgresql"
        self.bin = bin_dir
        self.port = port
        self.user = pwd.getpwnam("postgres")
        self.base = Path(tempfile.mkdtemp(prefix="flaskr-pg-"))
        self.data = self.base / "data"
        self.sockets = self.base / "sock"
        self.sockets.mkdir()
        os.chown(self.base, self.user.pw_uid, self.user.pw_gid)
        os.chown(self.sockets, self.user.pw_uid, self.user.pw_gid)
        #: What flaskr takes (FLASKR_DATABASE_URL), and what libpq takes.
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/flaskr"
        self.dsn = f"postgresql://postgres@127.0.0.1:{port}/flaskr"

    def _run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *cmd],
            check=check,
            capture_output=True,
            cwd=self.base,
            timeout=120,
        )

    def create(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                  "postgres", "-E", "UTF8")  # fmt: skip
        self.start()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "flaskr")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c max_connections=200"
        )
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                  str(self.base / "log"), "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends every session (what a restart of the service does)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60",
                  "stop")  # fmt: skip

    def running(self) -> bool:
        done = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "status", check=False)
        return done.returncode == 0

    def query(self, sql: str, *params: object) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.dsn, connect_timeout=10) as connection:
            return connection.execute(sql, params or None).fetchall()

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                      "stop", check=False)  # fmt: skip
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def postgres(port: int | None = None) -> Iterator[Postgres]:
    """A new cluster (on a free port unless given) for the with-block, removed afterwards."""
    pg = Postgres(port or free_port())
    try:
        pg.create()
        yield pg
    finally:
        pg.destroy()
