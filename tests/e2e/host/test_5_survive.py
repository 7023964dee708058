"""Stage 5 of the host suite (see __init__.py): kill -9 of the master, a reboot, and the
daily backup with its restore, every post kept."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid

from tests.e2e.host.helpers import MAX_EXPOSURE, SOCKET, Host, exposure, flaskr_pids
from toolkit.machines import Machine
from toolkit.recipes import recipe
from toolkit.wait import until


def test_kill_9_of_the_master_is_restarted(host: Host) -> None:
    m = host.machine
    main, _ = flaskr_pids(m)
    restarts = int(m.show("flaskr", "NRestarts")["NRestarts"])
    started = time.monotonic()
    m.run(["kill", "-9", str(main)])

    def restarted() -> bool:
        state = m.show("flaskr", "MainPID", "ActiveState", "SubState")
        return state["ActiveState"] == "active" and int(state["MainPID"]) not in (0, main)

    until(restarted, 30, "flaskr to be restarted", step=0.1)
    m.wait_http("/healthz", timeout=30)
    elapsed = time.monotonic() - started
    print(f"\nkill -9 of the master: answering again after {elapsed:.1f}s")
    assert int(m.show("flaskr", "NRestarts")["NRestarts"]) == restarts + 1
    assert elapsed < 20


def test_reboot_brings_it_back_with_every_post(host: Host, post: dict[str, object]) -> None:
    m = host.machine
    assert m.poweroff() == 0, m.tail()
    started = time.monotonic()
    m.boot()
    m.wait_http("/healthz", timeout=60)
    print(f"\nreboot: answering {time.monotonic() - started:.1f}s after boot began")
    assert m.run(["systemctl", "is-active", "flaskr"]).stdout.strip() == "active"
    assert m.sh(f"stat -c '%A %U %G' {SOCKET}") == "srwxrwx--- flaskr www-data"
    m.client("check-post", str(post["post_id"]), str(post["title"]), "37", "23")


def post_titles(machine: Machine) -> set[str]:
    out = machine.sh(
        'python3 -c "import sqlite3; [print(t) for (t,) in sqlite3.connect('
        "'/var/lib/flaskr/flaskr.sqlite').execute('SELECT title FROM post')]\""
    )
    return set(out.splitlines())


def test_backup_host_systemd_scripts_install_host_daily_and_restore(
    host: Host, post: dict[str, object]
) -> None:
    m = host.machine
    timers_line, start_line, journal_line = recipe(
        "docs/backup.md", "Host (systemd, scripts/install-host)", 0, {"sudo ": ""}
    )
    assert m.run(["systemctl", "is-enabled", "flaskr-backup.timer"]).stdout.strip() == "enabled"
    timers = m.recipe([timers_line], "/root")
    line = next(x for x in timers.stdout.splitlines() if "flaskr-backup.timer" in x)
    print(f"\nsystemctl list-timers: {line}")
    assert "flaskr-backup.service" in line
    timer = m.show("flaskr-backup.timer", "Persistent", "RandomizedDelayUSec", "TimersCalendar")
    assert timer["Persistent"] == "yes" and timer["RandomizedDelayUSec"] == "1h", timer
    unit = "/etc/systemd/system/flaskr-backup.service"
    verify = m.run(["systemd-analyze", "verify", unit, unit.replace("service", "timer")])
    assert verify.stdout == "" and verify.stderr == "", verify.stderr

    # The database settings of the site are the backup's (PostgreSQL: FLASKR_DATABASE_URL).
    # (The site reads mail.env too, which a backup has no use for.)
    def environment_files(unit: str) -> list[str]:
        out = m.run(["systemctl", "show", unit, "--property=EnvironmentFiles"]).stdout
        return [line.split("=", 1)[1].split()[0] for line in out.splitlines() if "=" in line]

    backup, site = environment_files("flaskr-backup.service"), environment_files("flaskr.service")
    assert backup == ["/etc/flaskr/database.env"], backup
    assert site == [*backup, "/etc/flaskr/mail.env"], site
    score = exposure(m.run(["systemd-analyze", "security", "--no-pager", "flaskr-backup"]).stdout)
    print(f"flaskr-backup.service exposure: {score}")
    assert score <= MAX_EXPOSURE

    # A run now, as the timer would start it, while people read and write: a private file in
    # the state folder holding every post acknowledged before it started.
    # (The timer may have run already: Persistent=true catches up at boot, after a reboot.)
    earlier = set(m.sh("ls /var/lib/flaskr/backups 2>/dev/null || true").split())
    with Flows(m) as flows, m.load() as load:
        flows.wait_for(2)
        load.wait_ok(50)
        started = time.monotonic()
        m.recipe([start_line], "/root")
        ended = time.monotonic()
        flows.wait_for(len(flows.acknowledged(float("inf"))) + 2)
        load.more(50)
        reads = load.stop()
    print(f"reads during the backup: sent {reads['sent']}, failed {reads['failed']}")
    assert reads["failed"] == 0, reads["errors"]
    before, after = flows.acknowledged(started), flows.acknowledged(float("inf"))
    later = after - flows.acknowledged(ended)
    backups = sorted(set(m.sh("ls /var/lib/flaskr/backups").split()) - earlier)
    assert len(backups) == 1 and backups[0].endswith(".sqlite.gz"), backups
    path = f"/var/lib/flaskr/backups/{backups[0]}"
    assert m.sh(f"stat -c '%a %U' {path}") == "600 flaskr"
    journal = m.recipe([journal_line], "/root").stdout
    summary = json.loads(re.findall(r"^.*?: (\{.*\})$", journal, re.M)[-1])
    assert summary["path"] == path and summary["posts"] >= 1

    # Written after the backup, gone after the restore; everything from before is served again.
    assert later and later <= post_titles(m)
    # The admin command, as docs/backup.md restores: the service's user, settings and database.
    refused = m.run(["flaskr", "restore", path], check=False, timeout=300)
    assert refused.returncode == 1 and "while the app serves" in refused.stderr, refused.stderr
    restore = recipe(
        "docs/backup.md",
        "Host (systemd, scripts/install-host)",
        1,
        {"sudo ": "", "FILE": backups[0]},
    )
    try:
        done = m.recipe(restore, "/root")
        assert "Kept the previous database as" in done.stdout, done.stdout
    finally:
        m.run(["systemctl", "start", "flaskr"])
    m.wait_http("/healthz", timeout=60)
    titles = post_titles(m)
    print(f"host restore drill: {len(before & titles)} of {len(before)} posts acknowledged before")
    assert before and before <= titles and not later & titles
    assert str(post["title"]) in titles
    m.client("check-post", str(post["post_id"]), str(post["title"]), "37", "23")


class Flows:
    """Two people at a time going through the whole flow (register, post with an image) in a
    loop; each post's title is kept with the moment the site acknowledged it."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.stop = threading.Event()
        self.done: list[tuple[str, float]] = []
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self.run, args=(n,)) for n in range(2)]

    def run(self, n: int) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            title = f"Drill-{n}-{i}-{uuid.uuid4().hex[:6]}"
            try:
                self.machine.client("flow", title)
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(str(e)[:500])
                return
            self.done.append((title, time.monotonic()))

    def acknowledged(self, before: float) -> set[str]:
        return {title for title, at in list(self.done) if at < before}

    def wait_for(self, count: int, timeout: float = 120) -> None:

        def done() -> bool:
            assert not self.errors, self.errors
            return len(self.done) >= count

        until(done, timeout, f"{count} flows", step=0.1)

    def __enter__(self) -> Flows:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(180)
        assert not self.errors, self.errors
