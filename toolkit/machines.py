"""A throwaway Debian machine with a real systemd, for tests/e2e/host/.

systemd-nspawn boots a root filesystem of toolkit/debian.py ("machine" for the host
suite) inside ``unshare --mount`` with a private network, as ../shared/notes/containers.md
recommends: under nspawn, ``Restart=`` and reloads behave as on
a real host. Commands run inside with ``nsenter -t INIT -a``; HTTP clients run with
``nsenter -t INIT -n`` only (the machine's loopback, the host's files and Python).
Everything is stopped by process id and removed by path; nothing is registered anywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from toolkit import ROOT, ToolkitError
from toolkit.debian import CACHE, locked
from toolkit.packages import need
from toolkit.wait import until

CLIENT = Path(__file__).with_name("machine_client.py")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class MachineError(ToolkitError):
    pass


def wheelhouse(requirements: Path) -> Path:
    """The wheels of requirements.txt, fetched once with the host's pip (and its CA and index
    settings). The host runs the machine's Debian 12 and CPython 3.11, so the same wheels fit;
    install-host checks their hashes."""
    key = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    wheels = CACHE / f"wheels-{key}"
    with locked(CACHE / "wheels.lock"):
        if not wheels.exists():
            partial = CACHE / f"wheels-{key}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--require-hashes",
                    "--no-deps",
                    "--only-binary=:all:",
                    "-r",
                    str(requirements),
                    "-d",
                    str(partial),
                ],
                check=True,
                timeout=600,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            partial.rename(wheels)
    return wheels


def copy_checkout(dest: Path) -> Path:
    """What a user's checkout holds for install-host: the code, scripts, deploy files, docs."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.sock", ".*")
    dest.mkdir(parents=True)
    for name in ("flaskr", "scripts", "deploy", "docs"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore, symlinks=True)
    for name in ("requirements.txt", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    return dest


class Machine:
    """One nspawn machine on ``rootfs``; ``binds`` maps host folders to read-only ones inside."""

    def __init__(self, name: str, rootfs: Path, binds: dict[Path, str], log: Path) -> None:
        self.name = name
        self.rootfs = rootfs
        self.binds = binds
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.init_pid = 0

    # --- life cycle --------------------------------------------------------------------------
    def boot(self, timeout: float = 90) -> None:
        need("nspawn")
        script = (
            "set -e; mkdir -p /run/systemd/nspawn; mount -t tmpfs tmpfs /run/systemd/nspawn; "
            'exec systemd-nspawn "$@"'
        )
        args = [
            "--boot",
            f"--directory={self.rootfs}",
            f"--machine={self.name}",
            "--register=no",
            "--keep-unit",
            "--private-network",
            "--console=passive",
            *(f"--bind-ro={src}:{dst}" for src, dst in self.binds.items()),
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        self.init_pid = 0
        while not self.init_pid:
            if self.proc.poll() is not None:
                raise MachineError(f"systemd-nspawn exited {self.proc.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                raise MachineError(f"the machine's init did not appear: {self.tail()}")
            self.init_pid = self._child_init()
            if not self.init_pid:
                time.sleep(0.05)
        while True:  # systemctl fails until the machine's systemd and D-Bus are up
            left = max(5.0, deadline - time.monotonic())
            state = self.run(
                ["systemctl", "is-system-running", "--wait"], check=False, timeout=left
            )
            # "offline": /run/systemd/system is not there yet, PID 1 is still starting.
            if state.stdout.strip() not in ("", "offline") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if state.stdout.strip() != "running":
            failed = self.run(["systemctl", "--failed", "--no-legend"], check=False).stdout
            raise MachineError(
                f"the machine is {state.stdout.strip()!r} ({state.stderr.strip()}); "
                f"failed units:\n{failed}"
            )

    def _child_init(self) -> int:
        assert self.proc is not None
        pid = self.proc.pid
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "systemd-nspawn":
                return 0
            for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
                if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                    return int(child)
        except OSError:
            pass
        return 0

    def poweroff(self, timeout: float = 60) -> int:
        """A clean shutdown, as `systemctl poweroff` on a server; returns nspawn's exit status."""
        assert self.proc is not None
        self.run(["systemctl", "poweroff"], check=False, timeout=30)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.init_pid = 0

    def kill(self) -> None:
        """Stop everything this machine started, whatever state it is in."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            init = self.init_pid or self._child_init()
            if init:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(init, signal.SIGKILL)  # PID 1 of its namespace: takes all with it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        self.init_pid = 0

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # --- inside the machine ------------------------------------------------------------------
    def run(
        self, args: list[str], check: bool = True, timeout: float = 120, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command as root inside the machine, with a clean environment (as sudo does);
        ``stdin``: what is typed at its prompts (nothing by default)."""
        if not self.init_pid:
            raise MachineError("the machine is not running")
        command = ["nsenter", "-t", str(self.init_pid), "-a"]
        command += ["env", "-i", f"PATH={PATH}", "LANG=C.UTF-8", "HOME=/root", *args]
        feed = {"stdin": subprocess.DEVNULL} if stdin is None else {"input": stdin}
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **feed)
        if check and done.returncode != 0:
            raise MachineError(
                f"{' '.join(args)} exited {done.returncode}\n"
                f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
            )
        return done

    def sh(self, script: str, check: bool = True, timeout: float = 120) -> str:
        return self.run(["sh", "-c", script], check=check, timeout=timeout).stdout.strip()

    def recipe(
        self,
        lines: list[str],
        cwd: str,
        check: bool = True,
        timeout: float = 300,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """A guide's recipe (toolkit/recipes.py) as a reader runs it in a root shell on the
        server: its lines in one shell from ``cwd``, stopping at the first that fails.
        FLASKR_WHEELS: the machine has no network, so install-host installs from the wheels."""
        script = "\n".join(["set -e", f"cd {cwd}", *lines])
        return self.run(
            ["env", "FLASKR_WHEELS=/srv/wheels", "sh", "-c", script],
            check=check,
            timeout=timeout,
            stdin=stdin,
        )

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run(["systemctl", "show", unit, *(f"--property={p}" for p in props)]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def children(self, pid: int | str) -> set[int]:
        """Child PIDs (as the machine numbers them) of a process inside it."""
        out = self.sh(f"cat /proc/{pid}/task/{pid}/children 2>/dev/null || true")
        return {int(p) for p in out.split()}

    # --- HTTP from the machine's loopback ---------------------------------------------------
    def _client_command(self, args: list[str]) -> list[str]:
        if not self.init_pid:
            raise MachineError("the machine is not running")
        return ["nsenter", "-t", str(self.init_pid), "-n", sys.executable, str(CLIENT), *args]

    def client(self, *args: str, timeout: float = 120) -> dict[str, object]:
        done = subprocess.run(
            self._client_command(list(args)),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise MachineError(f"machine_client {' '.join(args)} failed:\n{done.stderr}")
        return json.loads(done.stdout.splitlines()[-1])

    def wait_http(self, path: str = "/healthz", timeout: float = 30) -> float:
        """Poll through nginx until ``path`` answers 200; returns the seconds it took."""
        start = time.monotonic()
        last: list[dict[str, object]] = [{}]

        def answers() -> bool:
            last[0] = self.client("get", path, timeout=10)
            return last[0].get("status") == 200

        until(answers, timeout, lambda: f"{path} to answer 200 (last: {last[0]})", step=0.1)
        return time.monotonic() - start

    def load(self, seconds: float = 180, options: tuple[str, ...] = ()) -> Load:
        """``options``: machine_client's own (--host NAME --cafile FILE for https)."""
        return Load(self._client_command([*options, "load", str(seconds)]))


class Load:
    """Concurrent GETs through nginx while something happens; counts every failure."""

    def __init__(self, command: list[str]) -> None:
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.progress: dict[str, int] = {"ok": 0, "failed": 0}
        self.result: dict[str, object] | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _drain(self, timeout: float) -> bool:
        """Take the lines printed so far; False once the client has finished."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return True
        if line is None:
            return False
        data = json.loads(line)
        if data.get("total"):
            self.result = data
        else:
            self.progress = data
        return True

    def wait_ok(self, count: int, timeout: float = 60) -> None:
        """Wait until ``count`` requests have succeeded in all."""
        deadline = time.monotonic() + timeout
        while self.progress["ok"] < count:
            if time.monotonic() > deadline or not self._drain(0.5):
                raise MachineError(f"load stalled at {self.progress} (wanted {count} ok)")

    def more(self, count: int, timeout: float = 60) -> None:
        """Wait until ``count`` more requests have succeeded than now."""
        self.wait_ok(self.progress["ok"] + count, timeout)

    def stop(self, timeout: float = 60) -> dict[str, object]:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        deadline = time.monotonic() + timeout
        while self._drain(0.5):
            if time.monotonic() > deadline:
                raise MachineError("the load client did not stop")
        self.proc.wait(timeout=timeout)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        if self.result is None:
            raise MachineError(
                f"the load client gave no totals (exit {self.proc.returncode}): {err}"
            )
        return self.result

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()

    def __enter__(self) -> Load:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
