#!/usr/bin/env bash
# Go back to the previous release (or RELEASE=<dir under ROOT/releases>) without downtime: the
# same switch as upgrade.sh (idle ports, /readyz gate, nginx, drain), without installing or
# migrating. Database migrations are not undone: releases only add to the schema.
set -Eeuo pipefail
trap 'echo "rollback.sh failed at line $LINENO: $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/release-lib.sh
. "$HERE/release-lib.sh"

exec 9>"$ROOT/.deploy.lock"
flock -n 9 || die "Another upgrade or rollback is running."

target=${RELEASE:-$(release_of previous)}
[ -n "$target" ] || die "No previous release under $ROOT (ROOT/previous is missing)."
case $target in /*) ;; *) target=$ROOT/releases/$target ;; esac
current=$(release_of current)
[ "$(readlink -f "$target")" != "$current" ] || die "$(basename "$target") is already current."

started=$SECONDS
step "Rolling back from $(basename "$current") to $(basename "$target")"
switch_to "$(readlink -f "$target")" || die "Rollback aborted: $(basename "$current") still serves."
echo "Rolled back to $(basename "$target") in $((SECONDS - started))s."
