"""System packages a suite needs, installed from Debian when missing: each suite names its own,
so it runs alone on a fresh CI machine, and several suites may install at the same time."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def apt_install(*packages: str, commands: tuple[str, ...] = ()) -> None:
    """Install Debian packages as root unless every command in ``commands`` is on PATH."""
    if commands and all(shutil.which(c) for c in commands):
        return
    if os.geteuid() != 0:
        pytest.fail(f"need root to install {' '.join(packages)} (or install them first)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Wait for another apt run (another suite, unattended-upgrades) instead of failing.
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    subprocess.run(
        ["apt-get", "update", "-q", *lock], check=True, env=env, stdout=subprocess.DEVNULL
    )
    subprocess.run(
        ["apt-get", "install", "-y", "-q", *lock, "--no-install-recommends", *packages],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
