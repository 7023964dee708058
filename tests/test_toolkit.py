"""The toolkit (toolkit/), checked without installing or building anything: which Debian mirror
its root filesystems come from (apt's configuration), that every package a suite installs is
listed in one place that .ci/run can purge, and that it and bench/ need neither pytest nor the
tests."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit import ROOT, debian, packages

OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n'


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    (tmp_path / "apt" / "sources.list.d").mkdir(parents=True)
    (tmp_path / "os-release").write_text(OS_RELEASE)
    return tmp_path


def mirror_of(etc: Path) -> str:
    return debian.mirror(etc / "apt", etc / "os-release")


def test_mirror_is_the_deb822_source_of_this_release(
    etc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLASKR_E2E_DEBIAN_MIRROR", raising=False)
    (etc / "apt" / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n"
        "URIs: http://mirror.example/security/\n"
        "Suites: bookworm-security\n"
        "Components: main\n"
        "\n"
        "# a disabled one first\n"
        "Types: deb\n"
        "URIs: http://old.example/debian\n"
        "Suites: bookworm\n"
        "Enabled: no\n"
        "\n"
        "Types: deb deb-src\n"
        "URIs: http://mirror.example/debian/\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    (etc / "apt" / "sources.list.d" / "other.sources.disabled").write_text(
        "Types: deb\nURIs: http://wrong.example/\nSuites: bookworm\n"
    )
    assert mirror_of(etc) == "http://mirror.example/debian"


def test_mirror_from_a_one_line_sources_list(etc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLASKR_E2E_DEBIAN_MIRROR", raising=False)
    (etc / "apt" / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [signed-by=/usr/share/keyrings/debian.gpg] http://local.example/debian bookworm main\n"
    )
    assert mirror_of(etc) == "http://local.example/debian"


def test_mirror_setting_wins_and_none_found_says_what_to_set(
    etc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLASKR_E2E_DEBIAN_MIRROR", raising=False)
    (etc / "apt" / "sources.list").write_text("deb http://x.example/debian trixie main\n")
    with pytest.raises(debian.MirrorError, match="FLASKR_E2E_DEBIAN_MIRROR"):
        mirror_of(etc)
    monkeypatch.setenv("FLASKR_E2E_DEBIAN_MIRROR", "http://chosen.example/debian")
    assert mirror_of(etc) == "http://chosen.example/debian"


def test_root_filesystems_come_from_released_suites_only() -> None:
    assert {suite for suite, _ in debian.ROOTFS.values()} <= {"bookworm", "trixie"}


def test_every_e2e_suite_lists_its_packages() -> None:
    e2e = ROOT / "tests" / "e2e"
    # A file test_NAME.py, or a scenario package NAME/ (tests/e2e/scenario.py): test_NAME.
    suites = {p.stem for p in e2e.glob("test_*.py")}
    suites |= {f"test_{p.parent.name}" for p in e2e.glob("*/test_*.py")}
    assert set(packages.SUITES) == suites
    used = {part for parts in packages.SUITES.values() for part in parts}
    assert used <= set(packages.PARTS)
    assert set(packages.ON_A_NEW_MACHINE) <= set(packages.PARTS)


def test_every_install_goes_through_the_packages_module() -> None:
    """No other test, toolkit or bench file runs apt, and no file names a package registry's
    host."""
    own = ROOT / "toolkit" / "packages.py"
    ours = [p for folder in ("tests", "toolkit", "bench") for p in (ROOT / folder).rglob("*.py")]
    for path in ours:
        if path != own and path != Path(__file__):
            text = path.read_text()
            assert not re.search(r"[\"']apt(-get)?[\"']|dpkg -i", text), path
    registry = re.compile(r"deb\.debian\.org|debian\.org/debian|pypi\.org|pythonhosted|npmjs")
    assert [str(p) for p in project_files() if registry.search(p.read_text(errors="ignore"))] == []


def project_files() -> list[Path]:
    """The checkout's own files (no git needed: this also runs in a bare root filesystem)."""
    skipped = {".git", ".venv", "__pycache__", ".hypothesis", ".ruff_cache", ".pytest_cache",
               "instance", "out", "build", "node_modules"}  # fmt: skip
    found = []
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders if name not in skipped]
        found += [Path(folder) / name for name in files]
    found = [path for path in found if path.is_file() and not path.is_symlink()]
    return [path for path in found if path != Path(__file__)]  # it holds the pattern


def test_ci_purges_what_a_new_machine_lacks(tmp_path: Path) -> None:
    """Every suite package except those a new machine comes with, and every package that an
    install brought in with them, as logged."""
    log = tmp_path / "installed-packages"
    listed = packages.to_purge(log)
    assert {"mmdebstrap", "docker.io", "podman", "nginx", "chromium", "wrk"} <= set(listed)
    assert not {"postgresql", "curl", "openssl"} & set(listed)
    every = {p for part in packages.PARTS.values() for p in part.packages}
    assert set(listed) == every - {"postgresql", "curl", "openssl"}
    log.write_text("libgtk-3-0\nmmdebstrap\n")
    assert packages.to_purge(log) == sorted({*listed, "libgtk-3-0"})


def test_the_purge_list_prints_with_the_standard_library_only() -> None:
    """.ci/run runs it with the machine's python3, before any venv exists."""
    done = subprocess.run(
        [sys.executable, "-S", "-m", "toolkit.packages"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    listed = done.stdout.split()
    assert listed == packages.to_purge()


def test_need_says_what_is_missing_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(packages.PARTS, "nothing", packages.Part(("no-such-pkg",), ("/nope",)))
    monkeypatch.setattr(packages.os, "geteuid", lambda: 1000)
    with pytest.raises(packages.PackageError, match="need root to install no-such-pkg"):
        packages.need("nothing")
    packages.need()  # nothing asked: nothing to do


#: Run by another Python than this venv's: bench/plot.py under bench/.venv, with matplotlib.
ELSEWHERE = {"bench.plot"}
#: What neither the toolkit nor bench/ may import: they run without pytest and the tests.
FORBIDDEN = ("pytest", "_pytest", "tests")

#: Imports every module named on its command line with FORBIDDEN's imports made to fail.
IMPORT_ALL = """
import importlib, sys
FORBIDDEN = {forbidden!r}

class Forbidden:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError(f"{{name}} was imported")
        return None

sys.meta_path.insert(0, Forbidden())
for name in sys.argv[1:]:
    importlib.import_module(name)
"""


def modules(folder: str) -> list[str]:
    """The dotted names of every module in ``folder`` (a package) and its subpackages: not the
    files of other folders in it (bench/out's results, bench/.venv)."""
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        folders = path.relative_to(ROOT).parents
        if any(not (ROOT / f / "__init__.py").exists() for f in folders if f != Path(".")):
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def test_the_toolkit_and_bench_import_without_pytest_or_the_tests() -> None:
    """bench/run needs no pytest: every module of toolkit/ and bench/ imports in a Python where
    importing pytest, or anything from tests/, fails (whoever imports it, however deep)."""
    names = [name for name in modules("toolkit") + modules("bench") if name not in ELSEWHERE]
    assert "toolkit.servers" in names and "bench.run" in names
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL.format(forbidden=FORBIDDEN), *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_no_module_of_the_toolkit_or_bench_names_pytest_or_the_tests() -> None:
    """The same, read from the source: it covers ELSEWHERE's modules too."""
    for path in [*(ROOT / "toolkit").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported = [node.module or ""]
            else:
                continue
            assert not [n for n in imported if n.split(".")[0] in FORBIDDEN], (path, imported)


def test_no_toolkit_module_shadows_the_standard_library() -> None:
    """machine_client.py runs by path, so toolkit/ comes first on its sys.path: a toolkit/http.py
    would be the ``http`` its ``import http.client`` finds."""
    names = {path.stem for path in (ROOT / "toolkit").glob("*.py")}
    assert not names & sys.stdlib_module_names
