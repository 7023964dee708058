"""Stage 4 of the container suite (see __init__.py): the app's commands, metrics, a build
without the base image, the move to PostgreSQL, secrets kept off command lines."""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import time
import uuid
from pathlib import Path

from tests.e2e.container.helpers import Site
from toolkit import ToolkitError
from toolkit.cmdlines import watching_command_lines
from toolkit.containers import BASE_IMAGE, Engine
from toolkit.mailserver import Smtp
from toolkit.ports import free_port
from toolkit.postgres import Postgres
from toolkit.recipes import recipe
from toolkit.tls import issue, make_ca
from toolkit.visitors import Visitor
from toolkit.wait import wait_for_http


def test_deploy_container_the_app_s_commands(engine: Engine, site: Site) -> None:
    """create-user (the password typed twice, as at its prompt) and make-admin, as written."""
    who = f"adm{uuid.uuid4().hex[:6]}"
    password = f"correct horse {who}"
    lines = recipe(
        "docs/deploy-container.md", "The app's commands", 0, replace={" admin": f" {who}"}
    )
    at = {"FLASKR_CONTAINER": site.name}
    made = engine.sh(lines[0], stdin=f"{password}\n{password}\n", **at)
    assert f"Created user {who}." in made.stdout, made
    assert password not in made.stdout + made.stderr
    assert engine.sh(lines[1], **at).stdout.strip() == f"{who} is an admin."
    assert len(lines) == 2, lines
    form = {"username": who, "password": password}
    assert Visitor(site.base).post_form("/auth/login", form).status_code == 302


def test_operating_users_and_admins_in_the_container(engine: Engine, site: Site) -> None:
    """operating.md's container block: create-user, make-admin, clear-login-failures."""
    who = f"own{uuid.uuid4().hex[:6]}"
    password = f"correct horse {who}"
    lines = recipe(
        "docs/operating.md",
        "Users and admins",
        1,
        replace={" admin": f" {who}", " alice": f" {who}"},
    )
    at = {"FLASKR_CONTAINER": site.name}
    assert len(lines) == 4, lines
    made = engine.sh(lines[0], stdin=f"{password}\n{password}\n", **at)
    assert f"Created user {who}." in made.stdout, made
    assert engine.sh(lines[1], **at).stdout.strip() == f"{who} is an admin."
    wrong = {"username": who, "password": "not the password"}
    assert Visitor(site.base).post_form("/auth/login", wrong).status_code != 302
    cleared = engine.sh(lines[2], **at).stdout.strip()
    assert cleared == f"Forgot 1 failed logins counted against {who}.", cleared
    new = f"another horse {who}"
    reset = engine.sh(lines[3], stdin=f"{new}\n{new}\n", **at).stdout.strip()
    assert reset == f"New password set for {who}; every session of it has ended.", reset
    back_in = {"username": who, "password": new}
    assert Visitor(site.base).post_form("/auth/login", back_in).headers["Location"] == "/"


def test_operating_metrics_scraped_inside_the_container(engine: Engine, image: str) -> None:
    """The metrics recipe on both engines: `scripts/container metrics` asks from inside, on
    127.0.0.1. A host `curl` through Docker's published port comes from the bridge's gateway:
    a plain 404, and the log names the address and the setting."""
    name, volume, port = f"{engine.prefix}-metrics", f"{engine.prefix}-metrics-data", free_port()
    settings = engine.container_settings(name, volume, port)
    lines = recipe("docs/operating.md", "Metrics", 1, replace={" ARGS": ""})
    assert [line.split()[1] for line in lines] == ["rm", "run", "metrics"], lines
    try:
        for line in lines[:2]:
            engine.sh(line, **settings)
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz", timeout=90)
        scraped = engine.sh(lines[2], **settings).stdout
        assert 'flaskr_requests_total{endpoint="health.healthz"' in scraped, scraped[:2000]
        from_host = Visitor(base).get("/metrics")
        logs = engine.script("logs", **settings)
        refusals = [
            json.loads(line)["message"]
            for line in (logs.stdout + logs.stderr).splitlines()
            if "/metrics refused" in line
        ]
        print(f"{engine.kind}: curl from the host: {from_host.status_code}; log: {refusals}")
        # Both engines, as root, bring the host's request from the bridge's gateway.
        assert from_host.status_code == 404
        assert len(refusals) == 1 and "not in FLASKR_METRICS_ALLOW" in refusals[0], refusals
        assert re.match(r"/metrics refused to [0-9a-f.:]+: ", refusals[0]), refusals
        assert "127.0.0.1" not in refusals[0].split(":")[0]
    finally:
        engine.remove_container(name)


def test_build_without_the_base_image_says_the_base_is_missing(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """No Docker Hub: `build` names the missing base and what to do, not CA certificates.
    podman: an empty storage; Docker: the suite's stand-in untagged for the time of the build."""
    nobase = f"localhost/{engine.prefix}:nobase"
    engine.images.add(nobase)
    settings = {"FLASKR_IMAGE": nobase}
    base_id = ""
    if engine.kind == "podman":
        settings["FLASKR_PODMAN_ROOT"] = str(tmp_path / "empty-storage")
    else:
        base_id = engine.cli("image", "inspect", "--format", "{{.Id}}", BASE_IMAGE).strip()
        engine.cli("rmi", BASE_IMAGE)  # untagged: the stand-in keeps its own name
    try:
        built = engine.script("build", check=False, timeout=300, **settings)
    finally:
        if base_id:
            engine.cli("tag", base_id, BASE_IMAGE)
    assert built.returncode == 1, built
    said = built.stderr
    print(f"{engine.kind}: {said.strip().splitlines()[-2:]}")
    assert "the base image python:3.12.4-alpine3.20 is not on this machine" in said, said
    assert "engine load -i base.tar" in said and "registry mirror" in said
    assert "CERTIFICATE" not in said and "CA bundle" not in said


class BridgedPostgres(Postgres):
    """Debian's PostgreSQL (toolkit/postgres.py), listening on every address too, so
    that containers on the engine's bridge reach it through its gateway, as a database server
    elsewhere; from there only the role ``flaskr``, with its password."""

    def start(self) -> None:
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=* -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                  str(self.base / "log"), "-w", "-t", "60", "start")  # fmt: skip

    def admit(self, subnet: str, password: str) -> None:
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host flaskr flaskr {subnet} scram-sha-256\n")
        assert password.isalnum(), "a literal in SQL: letters and digits only"
        import psycopg

        with psycopg.connect(self.dsn, connect_timeout=10, autocommit=True) as connection:
            connection.execute(f"CREATE ROLE flaskr LOGIN PASSWORD '{password}'")
            connection.execute("ALTER DATABASE flaskr OWNER TO flaskr")
            connection.execute("ALTER SCHEMA public OWNER TO flaskr")
            connection.execute("SELECT pg_reload_conf()")


def bridge(engine: Engine) -> tuple[str, str]:
    """(subnet, gateway) of the engine's default network, where its containers are. A new
    dockerd's bridge may list no gateway: then it is the subnet's first address, docker0's."""
    if engine.kind == "docker":
        shown = "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}"
        found = engine.cli("network", "inspect", "--format", shown, "bridge").split()
    else:
        shown = "{{range .Subnets}}{{.Subnet}} {{.Gateway}}{{end}}"
        found = engine.cli("network", "inspect", "--format", shown, "podman").split()
    if len(found) == 1:
        found.append(str(next(ipaddress.ip_network(found[0]).hosts())))
    assert len(found) == 2, found
    return found[0], found[1]


def test_operating_moving_to_postgresql_from_the_container(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """operating.md's container move: init-db on PostgreSQL with database.env, stop, copy-db
    from the stopped container's volume (the password from a 0600 file, the form the guide
    gives after the block), then the container again on PostgreSQL, serving the same post."""
    subnet, gateway = bridge(engine)
    pg = BridgedPostgres(free_port())
    name, volume, port = f"{engine.prefix}-pg", f"{engine.prefix}-pg-data", free_port()
    settings = engine.container_settings(name, volume, port)
    base = f"http://127.0.0.1:{port}"
    password = uuid.uuid4().hex
    try:
        pg.create()
        pg.admit(subnet, password)
        engine.script("run", **settings)
        wait_for_http(f"{base}/healthz", timeout=90)
        author = Visitor(base)
        form = {"username": "mover", "password": "a long password here"}
        assert author.post_form("/auth/register", form).status_code == 302
        assert author.post_form("/auth/login", form).status_code == 302
        title = f"Moved to PostgreSQL {uuid.uuid4().hex[:6]}"
        created = author.post_form("/create", {"title": title, "body": "From SQLite."})
        assert created.status_code == 302, created.text[:1000]
        sqlite_backup = engine.script("backup", str(tmp_path / "backups"), **settings).stdout
        sqlite_backup = sqlite_backup.removeprefix("Backed up to ").split(": ")[0]
        env_file, password_file = tmp_path / "database.env", tmp_path / "pgpass"
        for secret, text in (
            (env_file, f"FLASKR_DATABASE_URL=postgresql://flaskr:{password}@{gateway}:{pg.port}/flaskr\n"),
            (password_file, password + "\n"),
        ):  # fmt: skip
            secret.write_text(text)
            secret.chmod(0o600)
        target = f"postgresql://flaskr@{gateway}:{pg.port}/flaskr"
        lines = recipe(
            "docs/operating.md",
            "Moving to PostgreSQL",
            1,
            replace={
                "database.env": str(env_file),
                "flaskr:latest": engine.image,
                "'TARGET'": f"'{target}' --password-file {shlex.quote(str(password_file))}",
            },
        )
        for line in lines:
            done = engine.sh(line, timeout=300, **settings)
            assert password not in done.stdout + done.stderr
        wait_for_http(f"{base}/healthz", timeout=90)
        assert pg.query("SELECT title FROM post") == [(title,)]
        assert title in Visitor(base).get("/").text
        assert Visitor(base).post_form("/auth/login", form).status_code == 302
        env = engine.exec(name, "env").stdout
        assert f"@{gateway}:{pg.port}/flaskr" in env
        # backup and restore work on the volume's SQLite file: on PostgreSQL they refuse (the
        # restore once "succeeded" into the unused file), stopping nothing.
        for command in (["backup"], ["restore", sqlite_backup]):
            refused = engine.script(*command, check=False, **settings)
            assert refused.returncode == 1, refused
            assert f"{name} keeps its data in PostgreSQL" in refused.stderr, refused.stderr
            assert "the image has no pg_dump or pg_restore" in refused.stderr
            assert f"stopped {name}" not in refused.stderr
        assert pg.query("SELECT title FROM post") == [(title,)]
        assert title in Visitor(base).get("/").text
    finally:
        engine.remove_container(name)
        pg.destroy()


def test_a_command_on_a_stopped_container_puts_no_secret_on_a_command_line(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """`scripts/container flask` on a stopped container runs a one-off container with the
    stopped one's environment, secret key included: it goes in a private file, never on the
    engine's command line (it did, as `--env FLASKR_SECRET_KEY=...`). So does the password of
    `copy-db --password-file FILE`, a host file (as PGPASSWORD); FILE must be private."""
    key = uuid.uuid4().hex + uuid.uuid4().hex
    password = uuid.uuid4().hex
    secret = tmp_path / "target-password"
    secret.write_text(password + "\n")
    secret.chmod(0o644)
    # Nothing listens on port 9: the copy gets as far as connecting, with the password.
    copy_db = ["flask", "copy-db", "--to", "postgresql://flaskr@127.0.0.1:9/flaskr"]
    name = f"{engine.prefix}-argv"
    settings = engine.container_settings(name, f"{name}-data", free_port())
    engine.script("run", FLASKR_SECRET_KEY=key, **settings)
    try:
        engine.script("stop", **settings)
        with watching_command_lines(key.encode()) as watch:
            command = engine.popen("flask", "routes", **settings)
            out, err = command.communicate(timeout=300)
        assert command.returncode == 0, err
        assert "/auth/login" in out, out
        assert watch.rounds > 1 and watch.found == []

        refused = engine.script(*copy_db, "--password-file", str(secret), check=False, **settings)
        assert refused.returncode == 1 and f"chmod 600 {secret}" in refused.stderr, refused
        secret.chmod(0o600)
        with watching_command_lines(password.encode()) as watch:
            command = engine.popen(*copy_db, "--password-file", str(secret), **settings)
            out, err = command.communicate(timeout=300)
        assert command.returncode == 1 and "failed, nothing was kept" in err, err
        assert password not in out + err
        assert watch.rounds > 1 and watch.found == []
    finally:
        engine.remove_container(name)


def test_run_refuses_a_secret_key_file_the_app_cannot_read(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    key = tmp_path / "secret_key"
    key.write_text(uuid.uuid4().hex * 2)
    key.chmod(0o600)
    name = f"{engine.prefix}-unreadable"
    settings = engine.container_settings(name, f"{name}-data", free_port())
    done = engine.script("run", check=False, FLASKR_SECRET_KEY_FILE=str(key), **settings)
    assert done.returncode == 1
    assert "unreadable for the app, which runs as uid 10001" in done.stderr, done.stderr
    assert f"chmod 0444 {key}" in done.stderr
    assert engine.script("engine", "container", "exists", name, check=False).returncode == 1
    # A key the app refuses: `run` said "started" over a restart loop; it waits and fails.
    try:
        started = time.monotonic()
        done = engine.script("run", check=False, FLASKR_SECRET_KEY="short", **settings)
        took = time.monotonic() - started
        print(f"{engine.kind}: run with a short key failed in {took:.1f}s")
        assert done.returncode == 1, done
        assert f"{name} did not start serving" in done.stderr, done.stderr
        assert "secret key" in done.stderr.split("did not start")[0], done.stderr
        assert "started;" not in done.stderr and took < 60
    finally:
        engine.remove_container(name)


def test_operating_the_mail_sender_beside_the_container(
    engine: Engine, image: str, site: Site, tmp_path: Path
) -> None:
    """operating.md's single container: the app run with the mail settings, `mail start`
    beside it. An address asked for over HTTP is mailed by the sender's container through a
    real SMTP server (aiosmtpd, STARTTLS) on the engine's bridge; `mail stop` removes it."""
    refused = engine.script("mail", "start", check=False, FLASKR_CONTAINER=site.name)
    assert refused.returncode == 1 and "has no FLASKR_MAIL_URL" in refused.stderr, refused
    _, gateway = bridge(engine)
    ca = make_ca(tmp_path / "tls", "container mail CA")
    smtp = Smtp(tmp_path, (ca, *issue(ca, "smtp", ["localhost"], ips=(gateway,))), host=gateway)
    name, volume, port = f"{engine.prefix}-mailer", f"{engine.prefix}-mailer-data", free_port()
    settings = engine.container_settings(name, volume, port)
    engine.containers.add(f"{name}-mail")
    site_url, address = "https://blog.example.test", "mia@example.test"
    mail = {"FLASKR_MAIL_URL": f"smtp://{gateway}:{smtp.port}", "SSL_CERT_FILE": "/run/ca.pem",
            "FLASKR_MAIL_FROM": "blog@example.test", "FLASKR_SITE_URL": site_url,
            "FLASKR_MAIL_POLL_SECONDS": "1"}  # fmt: skip
    args = [f"--env={k}={v}" for k, v in mail.items()] + [f"--volume={ca}:/run/ca.pem:ro"]
    with smtp.up():
        engine.script("run", *args, **settings)
        engine.script("mail", "start", **settings)
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz", timeout=90)
        person = Visitor(base)
        person.register_and_login("mia", "a long password here")
        fields = {"email": address, "current": "a long password here"}
        assert person.submit("/auth/email", fields).status_code == 302
        try:
            link = smtp.link_path(site_url, address, "Confirm your e-mail address")
        except ToolkitError as e:
            logs = engine.script("mail", "logs", check=False, **settings)
            raise ToolkitError(f"{e}\nthe sender said:\n{logs.stdout}{logs.stderr}") from e
        assert person.submit(link, {}).headers["Location"] == "/"
    status = engine.script("mail", "status", **settings).stdout
    assert f"{name}-mail" in status and "Up" in status, status
    logs = engine.script("mail", "logs", **settings)
    assert f"sent to {address}" in logs.stdout + logs.stderr
    assert "removed" in engine.script("mail", "stop", **settings).stderr
    assert not engine.exists(f"{name}-mail")
