# shellcheck shell=bash
# Used by scripts/install-host (with scripts/lib/say.sh): put FROM TO MODE copies the file FROM
# to TO (mode MODE, owned by root) only when the content or mode differs, atomically (a
# temporary file renamed over the old one), so a running worker never reads half a file. It
# says "wrote TO", unless quiet=1. Returns 0 when it changed something, 1 when TO was right.
put() {
  local from=$1 to=$2 mode=$3
  if [[ -f $to ]] && cmp -s "$from" "$to" && [[ $(stat -c %a "$to") == "${mode#0}" ]]; then
    return 1
  fi
  install -D -m "$mode" -o root -g root "$from" "$to.install-host.tmp"
  mv -f "$to.install-host.tmp" "$to"
  ((${quiet:-0})) || say "  wrote $to"
}
