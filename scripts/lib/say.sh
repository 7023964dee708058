# shellcheck shell=bash
# Shared by scripts/install-host and scripts/container: their messages, one line each, which
# start with the script's name. The script sets, before it says anything:
#   say_as  that name: "install-host: ..."
#   say_to  where say writes: 1 (stdout), or 2 when stdout is the command's own output
#           (scripts/container's logs, status, a backup's path)
#   die_as  what an error's line adds after the name ("error: "), or nothing
# die says it on stderr and exits 1, after the script's before_die when it has one
# (install-host puts the release that served back in place).
say() { printf '%s: %s\n' "${say_as:?}" "$*" >&"${say_to:-1}"; }
die() {
  if declare -F before_die >/dev/null; then before_die; fi
  printf '%s: %s%s\n' "${say_as:?}" "${die_as:-}" "$*" >&2
  exit 1
}
