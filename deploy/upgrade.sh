#!/usr/bin/env bash
# Zero-downtime upgrade: install a new release beside the running one, migrate, start it on the
# idle set of ports, wait for /readyz, point nginx at it, then let the old web processes finish
# the answers they are streaming and exit. deploy/rollback.sh goes back to the previous release.
#
#   bash deploy/upgrade.sh                    # this checkout, as root on the server
#   SOURCE=/path/to/multinotes-1.2.whl bash deploy/upgrade.sh
#
# Settings (environment), besides those of release-lib.sh (ROOT, ENV_FILE, LAUNCHER, ports,
# proxy):
#   SOURCE          what to pip install: a checkout, a wheel or a requirement (default: this
#                   checkout)
#   EXTRA_PACKAGES  more requirements for the release's venv (third-party plugins)
#   PYTHON          interpreter for the venv (default python3)
#   INSTALL_CMD     replaces the venv step: run as `$INSTALL_CMD <release dir>`, it must leave an
#                   executable <release dir>/venv/bin/multinotes
#   KEEP_RELEASES   releases kept on disk, current and previous included (default 5)
#
# Migrations run while the old release still serves, so a schema change must work with both
# (add first, remove in a later release). A rollback does not undo migrations.
set -Eeuo pipefail
trap 'echo "upgrade.sh failed at line $LINENO: $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/release-lib.sh
. "$HERE/release-lib.sh"

SOURCE=${SOURCE:-$(dirname "$HERE")}
EXTRA_PACKAGES=${EXTRA_PACKAGES:-}
PYTHON=${PYTHON:-python3}
INSTALL_CMD=${INSTALL_CMD:-}
KEEP_RELEASES=${KEEP_RELEASES:-5}

mkdir -p "$ROOT/releases"
exec 9>"$ROOT/.deploy.lock"
flock -n 9 || die "Another upgrade or rollback is running."
started=$SECONDS

release=$ROOT/releases/$(date -u +%Y%m%dT%H%M%SZ)
while [ -e "$release" ]; do release+="x"; done
step "Installing $SOURCE into $release"
mkdir -p "$release"
cleanup_failed_install() { rm -rf "$release"; }
if [ -n "$INSTALL_CMD" ]; then
  # shellcheck disable=SC2086  # a command with its arguments
  $INSTALL_CMD "$release" || { cleanup_failed_install; die "INSTALL_CMD failed."; }
else
  {
    "$PYTHON" -m venv "$release/venv" &&
      "$release/venv/bin/pip" install --quiet --upgrade pip &&
      "$release/venv/bin/pip" install --quiet "$SOURCE" &&
      if [ -n "$EXTRA_PACKAGES" ]; then
        # shellcheck disable=SC2086  # a list of requirements
        "$release/venv/bin/pip" install --quiet $EXTRA_PACKAGES
      fi
  } || { cleanup_failed_install; die "Installing $SOURCE failed; nothing changed."; }
fi
"$release/venv/bin/multinotes" --help >/dev/null ||
  { cleanup_failed_install; die "The new release does not start; nothing changed."; }
# nginx serves static files from ROOT/static: the new release's, linked before the switch (the
# app adds a content hash to every static URL, so pages of the old release ask for names that
# change only with their content).
static=$("$release/venv/bin/python" -c 'from multinotes.webui import STATIC_DIR; print(STATIC_DIR)')
ln -sfn "$static" "$ROOT/static.new" && mv -T "$ROOT/static.new" "$ROOT/static"

step "multinotes migrate"
run_cli "$release" migrate

if ! switch_to "$release"; then
  echo "Upgrade aborted: $(basename "$(release_of current)") still serves." >&2
  exit 1
fi

step "Pruning old releases (keeping $KEEP_RELEASES)"
current=$(release_of current)
previous=$(release_of previous)
# Release names are UTC stamps: sorted by name is sorted by age.
mapfile -t releases < <(find "$ROOT/releases" -mindepth 1 -maxdepth 1 -type d | sort)
excess=$(( ${#releases[@]} - KEEP_RELEASES ))
for old in "${releases[@]}"; do
  [ "$excess" -gt 0 ] || break
  if [ "$old" != "$current" ] && [ "$old" != "$previous" ]; then
    rm -rf "$old"
    excess=$((excess - 1))
  fi
done

echo "Upgraded to $(basename "$release") in $((SECONDS - started))s."
