# shellcheck shell=bash
# Shared by scripts/serve and scripts/test: create .venv and install a pinned, hashed
# requirements file into it, again only when that file changed. The locks are complete, so pip
# installs exactly what they list and resolves nothing (--no-deps): a new upstream release cannot
# change what a fresh clone gets. pip check then proves no dependency is missing from the lock.
ensure_venv() {
  local requirements=$1 stamp
  stamp=.venv/.installed-$(basename "$1")
  if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv with $(command -v "${PYTHON:-python3}")"
    "${PYTHON:-python3}" -m venv .venv
  fi
  if [[ ! -f $stamp || $requirements -nt $stamp ]]; then
    echo "setup: installing $requirements into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
      -r "$requirements"
    .venv/bin/python -m pip check --disable-pip-version-check
    touch "$stamp"
  fi
}
