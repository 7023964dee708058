"""Stage 4 of the host suite (see __init__.py): the operator's commands (`sudo flaskr`,
metrics), the rollback to stage 3's named upgrade and forward again, and PostgreSQL."""

from __future__ import annotations

import json
import re
import uuid

from tests.e2e.host.helpers import INSTALL, SRC, Host, flaskr_pids, snapshot
from toolkit.machines import Machine
from toolkit.recipes import recipe


def admins(user: str) -> dict[str, str]:
    """The recipes' replacements: a user of the test's own for the guides' "admin"."""
    return {"sudo ": "", "user admin": f"user {user}", "make-admin admin": f"make-admin {user}"}


def test_deploy_host_the_app_s_commands_sudo_flaskr(host: Host, post: dict[str, object]) -> None:
    m = host.machine
    user = f"admin{uuid.uuid4().hex[:6]}"
    password = "pw-" + uuid.uuid4().hex
    lines = recipe("docs/deploy-host.md", "The app's commands: sudo flaskr", 0, admins(user))
    # The password typed twice at create-user's prompts.
    done = m.recipe(lines, "/root", stdin=f"{password}\n{password}\n")
    assert f"Created user {user}." in done.stdout, done
    assert f"{user} is an admin." in done.stdout and "create-user" in done.stdout, done
    # The site's own database: the person who posted through nginx is found there.
    made = m.run(["flaskr", "make-admin", str(post["user"])])
    assert f"{post['user']} is an admin." in made.stdout
    again = m.run(
        ["flaskr", "create-user", user, "--password", "pw-" + uuid.uuid4().hex], check=False
    )
    assert again.returncode == 1 and "already registered" in again.stderr
    assert m.sh("find /var/lib/flaskr ! -user flaskr") == ""  # nothing of root's in its data
    # flask run by root from the code folder: no database there, so it says so and makes none.
    stray = m.run(
        ["sh", "-c", "cd /opt/flaskr/app && venv=/opt/flaskr/venv && "
         "$venv/bin/flask --app flaskr create-user x --password p"],
        check=False,
    )  # fmt: skip
    assert stray.returncode == 1 and "Traceback" not in stray.stderr, stray.stderr
    assert "there is no database at /opt/flaskr/app/instance/flaskr.sqlite" in stray.stderr
    assert "sudo flaskr COMMAND" in stray.stderr
    assert m.sh("ls -A /opt/flaskr/app/instance") == ""


def test_operating_users_and_admins_on_the_host(host: Host, post: dict[str, object]) -> None:
    m = host.machine
    user = f"ops{uuid.uuid4().hex[:6]}"
    lines = recipe("docs/operating.md", "Users and admins", 0, admins(user))
    # alice: who exists here for clear-login-failures; set-password is for the new account,
    # so the post's author keeps the password later stages log in with.
    lines = [
        line.replace(" alice", f" {user if 'set-password' in line else post['user']}")
        for line in lines
    ]
    assert len(lines) == 4 and "set-password" in lines[3], lines
    password, new = "pw-" + uuid.uuid4().hex, "new-" + uuid.uuid4().hex
    # One run each for the two commands that ask: the first to read would take it all.
    done = m.recipe(lines[:3], "/root", stdin=f"{password}\n{password}\n")
    assert f"Created user {user}." in done.stdout and f"{user} is an admin." in done.stdout
    assert f"failed logins counted against {post['user']}." in done.stdout, done.stdout
    reset = m.recipe(lines[3:], "/root", stdin=f"{new}\n{new}\n")
    assert f"New password set for {user}; every session of it has ended." in reset.stdout


def test_operating_metrics_host(host: Host) -> None:
    """The drop-in, written without an editor, then a restart: /metrics through nginx."""
    m = host.machine
    lines = recipe("docs/operating.md", "Metrics", 0, {
        "sudo ": "", "blog.example.org": "localhost", "curl ": "curl -sS --fail ",
    })  # fmt: skip
    try:
        done = m.recipe(lines, "/root")
    finally:
        m.sh("rm -f /etc/systemd/system/flaskr.service.d/metrics.conf && systemctl daemon-reload"
             " && systemctl restart flaskr")  # fmt: skip
    m.wait_http("/healthz", timeout=60)
    assert "# TYPE flaskr_database_errors_total counter" in done.stdout, done.stdout[-2000:]


def test_deploy_host_upgrading_rollback_stays_until_forward(host: Host) -> None:
    """The last install (the original checkout) replaced the named upgrade: --rollback brings
    that release back and stays: a plain re-run or --micro-cache from the newer checkout says
    so and changes nothing; --rollback refuses while the database is newer than what it
    knows; --forward installs the checkout's release again."""
    m = host.machine
    marker = next((host.src / "flaskr-named/flaskr/static").glob("named-*.txt")).name
    assert m.client("get", f"/static/{marker}")["status"] == 404
    rolled = m.recipe(recipe("docs/deploy-host.md", "Upgrading", 1, {"sudo ": ""}), f"{SRC}/flaskr")
    print(f"\nrollback:\n{rolled.stdout}")
    assert "rolling back to the release in /opt/flaskr/previous" in rolled.stdout
    assert "kept the release rolled back from in /opt/flaskr/previous" in rolled.stdout
    assert "run install-host with --forward" in rolled.stdout
    assert m.client("get", f"/static/{marker}")["status"] == 200
    before = snapshot(m), flaskr_pids(m)
    for args in ([], ["--micro-cache"]):
        kept = m.run([*INSTALL, *args], check=False, timeout=300)
        assert kept.returncode != 0 and "the site was rolled back" in kept.stderr, kept
        assert "run again with --forward" in kept.stderr and "done" not in kept.stdout, kept
    assert (snapshot(m), flaskr_pids(m)) == before  # nothing changed, nothing reloaded
    sql = (
        "import sqlite3, sys; c = sqlite3.connect('/var/lib/flaskr/flaskr.sqlite'); "
        "print(c.execute('select version_num from alembic_version').fetchone()[0]); "
        "c.execute('update alembic_version set version_num=?', sys.argv[1:]); c.commit()"
    )
    as_flaskr = ["runuser", "-u", "flaskr", "--", "/opt/flaskr/venv/bin/python", "-c", sql]
    # The backup taken before the upgrade; then the upgrade's migration (a revision neither
    # release knows stands for it).
    backup = m.sh("flaskr backup --json --quiet | tail -n 1")
    revision = m.run([*as_flaskr, "9999_from_the_future"]).stdout.strip()
    try:
        refused = m.run([*INSTALL, "--rollback"], check=False, timeout=300)
        assert refused.returncode != 0 and "refusing to roll back" in refused.stderr, refused
        assert m.client("get", f"/static/{marker}")["status"] == 200  # nothing was changed
        # A checkout older than the database: said so, and the serving release put back.
        older = m.run([*INSTALL, "--forward"], check=False, timeout=300)
        assert older.returncode == 1, older
        assert "the database was migrated by a newer release than this checkout" in older.stderr
        assert "putting the release that served back in place" in older.stdout, older.stdout
        assert m.client("get", f"/static/{marker}")["status"] == 200
        # The refusal's own way out, as it prints it: stop, restore the backup without
        # migrating it, --rollback (with the service stopped), which goes forward again here
        # (a second --rollback) and ends the rollback.
        advice = re.search(
            r"roll back: (sudo systemctl stop flaskr && .*? --rollback)", refused.stderr
        )
        assert advice and f"--no-migrate {json.loads(backup)['path']} &&" in advice[1], refused
        back = m.run(["sh", "-c", advice[1].replace("sudo ", "")], timeout=300)
    finally:
        m.run([*as_flaskr, revision])
    print(f"\nthe refusal's way out:\n{advice[1]}\n{back.stdout}")
    assert "not migrated (--no-migrate)" in back.stdout and "starting flaskr" in back.stdout
    assert "the rollback is over" in back.stdout, back.stdout
    assert m.client("get", f"/static/{marker}")["status"] == 404
    assert m.sh("test -e /opt/flaskr/rolled-back || echo over") == "over"
    # So does --forward, after another rollback.
    again = m.run([*INSTALL, "--rollback"], timeout=300)
    assert "rolled back: later runs keep this release" in again.stdout, again.stdout
    forward = m.run([*INSTALL, "--forward"], timeout=300)
    assert "the rollback is over" in forward.stdout, forward.stdout
    assert m.client("get", f"/static/{marker}")["status"] == 404
    assert m.sh("test -e /opt/flaskr/rolled-back || echo over") == "over"


# --- PostgreSQL: Debian's server in the machine, on its loopback, stands in for db.example.org.

#: The role and password the guides' URL holds; its databases are made by ``postgres``.
PG_PASSWORD = "pw-" + uuid.uuid4().hex
DATABASE_ENV = "/etc/flaskr/database.env"


def postgres(machine: Machine) -> None:
    """The machine's PostgreSQL answering, with the role flaskr and two empty databases: one
    for a new site (deploy-host.md), one to move this site's data to (operating.md)."""
    machine.sh("for i in $(seq 150); do pg_isready -q -h 127.0.0.1 && exit 0; sleep 0.2; done;"
               " pg_isready -h 127.0.0.1", timeout=60)  # fmt: skip
    psql = "runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -c"
    machine.sh(
        f"{psql} \"CREATE ROLE flaskr LOGIN PASSWORD '{PG_PASSWORD}'\" && "
        "runuser -u postgres -- createdb -O flaskr newsite && "
        "runuser -u postgres -- createdb -O flaskr moved"
    )


def pg_url(database: str, password: bool = True) -> str:
    return f"postgresql://flaskr{':' + PG_PASSWORD if password else ''}@127.0.0.1/{database}"


def test_deploy_host_postgresql_a_new_site(host: Host) -> None:
    """The guide's new site on PostgreSQL: database.env, the network drop-ins, init-db through
    `sudo flaskr`, a restart, and the daily backup as a .pgdump. Back to SQLite afterwards
    (the drop-ins stay, for operating.md's move below)."""
    m = host.machine
    postgres(m)
    write_env = f"echo 'FLASKR_DATABASE_URL={pg_url('newsite')}' > {DATABASE_ENV}"
    lines = recipe("docs/deploy-host.md", "PostgreSQL", 0, {
        "sudoedit /etc/flaskr/database.env": write_env, "sudo ": "",
    })  # fmt: skip
    earlier = set(m.sh("ls /var/lib/flaskr/backups 2>/dev/null || true").split())
    try:
        done = m.recipe(lines, "/root")
        m.wait_http("/healthz", timeout=60)
        index = m.client("get", "/")
        tables = m.sh("runuser -u postgres -- psql -d newsite -tAc 'SELECT count(*) FROM post'")
        made = sorted(set(m.sh("ls /var/lib/flaskr/backups").split()) - earlier)
    finally:
        m.sh(f"rm -f {DATABASE_ENV} && systemctl restart flaskr")
    print(f"\nPostgreSQL, a new site:\n{done.stdout[-1500:]}")
    assert "already the newest version" in done.stdout, done.stdout  # postgresql-client
    assert index["status"] == 200 and tables == "0", (index, tables)
    assert len(made) == 1 and made[0].endswith(".pgdump"), made
    assert m.sh(f"stat -c '%a %U' /var/lib/flaskr/backups/{made[0]}") == "600 flaskr"
    m.wait_http("/healthz", timeout=60)


def test_operating_moving_to_postgresql_on_the_host(host: Host, post: dict[str, object]) -> None:
    """operating.md's move of this (SQLite) site's data to PostgreSQL, after deploy-host.md's
    drop-ins (the test above): copy-db with the password from a file (it asks only in a
    terminal), then the site serves the same post from PostgreSQL. Back to SQLite after."""
    m = host.machine
    m.sh(f"install -m 0600 /dev/null /root/pgpw && echo '{PG_PASSWORD}' > /root/pgpw")
    write_env = f"echo 'FLASKR_DATABASE_URL={pg_url('moved')}' > /etc/flaskr/target.env"
    lines = recipe("docs/operating.md", "Moving to PostgreSQL", 0, {
        "sudoedit /etc/flaskr/target.env": write_env,
        "'TARGET'": f"'{pg_url('moved', password=False)}' --password-file /root/pgpw",
        "sudo ": "",
    })  # fmt: skip
    try:
        done = m.recipe(lines, "/root")
        m.wait_http("/healthz", timeout=60)
        m.client("check-post", str(post["post_id"]), str(post["title"]), "37", "23")
        on = m.sh(f"cat {DATABASE_ENV}")
    finally:
        m.sh(
            f"systemctl start flaskr; rm -f {DATABASE_ENV} /etc/flaskr/target.env /root/pgpw"
            " /etc/systemd/system/flaskr*.service.d/network.conf && systemctl daemon-reload"
            " && systemctl restart flaskr"
        )
    print(f"\nmoving to PostgreSQL:\n{done.stdout[-1500:]}")
    assert on == f"FLASKR_DATABASE_URL={pg_url('moved')}"
    title = str(post["title"]).replace("'", "''")
    found = m.sh(
        f"runuser -u postgres -- psql -d moved -tAc \"SELECT count(*) FROM post WHERE title = '{title}'\""
    )
    assert found == "1", found
    m.wait_http("/healthz", timeout=60)
