"""What the host suite's stages share: the paths and names of the installed site, and what
they read off the machine. The machine itself is conftest.py's."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from toolkit.machines import Machine
from toolkit.wait import until

SRC = "/srv/src"
INSTALL = [f"{SRC}/flaskr/scripts/install-host", "--wheels", "/srv/wheels"]
SOCKET = "/run/flaskr/flaskr.sock"
MAX_EXPOSURE = 0.5  # measured 0.3 on Debian 12's systemd 252; docs/deploy-host.md quotes it
#: What install-host owns on the machine: a re-run must leave every one of these untouched.
INSTALLED = (
    "/opt/flaskr /etc/flaskr /etc/systemd/system/flaskr.service /etc/nginx"
    " /etc/systemd/system/flaskr-backup.service /etc/systemd/system/flaskr-backup.timer"
    " /etc/systemd/system/flaskr-mail.service"
)
SITE = "/etc/nginx/sites-available/flaskr"
#: The site's name. The machine has no DNS: a line in its /etc/hosts stands in for the A
#: record, which pebble's validation and certbot find there (test_7_https.py; certbot refuses
#: "localhost"). test_3_upgrade.py installs for it too.
NAME = "blog.flaskr.test"


@dataclass
class Host:
    machine: Machine
    first_install: subprocess.CompletedProcess[str] | None
    src: Path


def snapshot(machine: Machine) -> str:
    """Path, size, mode, owner and modification time of everything install-host installs."""
    return machine.sh(f"find {INSTALLED} -printf '%p %s %m %u:%g %T@ %l\\n' | sort")


def flaskr_pids(machine: Machine) -> tuple[int, set[int]]:
    main = int(machine.show("flaskr", "MainPID")["MainPID"])
    return main, machine.children(main)


def nginx_pids(machine: Machine) -> tuple[int, set[int]]:
    main = int(machine.show("nginx", "MainPID")["MainPID"])
    return main, machine.children(main)


def wait_workers_replaced(machine: Machine, main: int, old: set[int]) -> int:
    """After `systemctl reload`: a new master, systemd's main process now, with three new
    workers; the old master and every old worker gone (they finish their requests first).
    Returns the new master."""

    def replaced() -> int | None:
        new_main, new = flaskr_pids(machine)
        if new_main == main or len(new) != 3 or new & old:
            return None
        left = machine.sh(
            f"ls -d /proc/{' /proc/'.join(map(str, {main, *old}))} 2>/dev/null || true"
        )
        return new_main if not left else None

    return until(replaced, 60, f"the master {main} and workers {old} to be replaced", step=0.1)


def exposure(output: str) -> float:
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", output)
    assert match, output[-2000:]
    return float(match.group(1))
