#!/usr/bin/env bash
# Restore drill: restore the newest backup into a scratch database and folder, start the app on
# them, and check it: rows per table (against the backup's manifest), every stored file's bytes,
# a login and a search. Nothing of the running site is touched. Exit code 0: the backup restores.
#
#   AGE_IDENTITY=/root/backup-key.txt DRILL_EMAIL=canary@example.com DRILL_PASSWORD=... \
#     DRILL_SEARCH=canary bash deploy/restore-drill.sh
#
# Settings (environment):
#   ENV_FILE         the app's settings, for Redis and the secret key (default /etc/multinotes/env)
#   BACKUP_DIR       where backup.sh writes (default /var/backups/multinotes); or BACKUP=<file>
#   AGE_IDENTITY     age private key file for .age archives (.gpg: the keyring of the user)
#   DRILL_DB         scratch database, dropped and created (default multinotes_restore_drill)
#   DRILL_DB_URL     how to reach the server as a user that may create it
#                    (default mysql://root@localhost/, over the socket: Debian's root)
#   DRILL_EMAIL, DRILL_PASSWORD   a canary account to log in as (skipped when unset)
#   DRILL_SEARCH     a word the canary's notes contain
#   KEEP_SCRATCH=1   leave the scratch database and folder for a look
#   PYTHON           a release's Python (default /opt/multinotes/current/venv/bin/python)
set -Eeuo pipefail
trap 'echo "restore-drill.sh failed at line $LINENO: $BASH_COMMAND" >&2' ERR
umask 077

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ENV_FILE=${ENV_FILE:-/etc/multinotes/env}
BACKUP_DIR=${BACKUP_DIR:-/var/backups/multinotes}
DRILL_DB=${DRILL_DB:-multinotes_restore_drill}
DRILL_DB_URL=${DRILL_DB_URL:-mysql://root@localhost/}
PYTHON=${PYTHON:-/opt/multinotes/current/venv/bin/python}
PORT=${DRILL_PORT:-$((20000 + RANDOM % 20000))}

case $DRILL_DB in *[!a-zA-Z0-9_]*) echo "DRILL_DB: letters, digits and _ only." >&2; exit 2 ;; esac
BACKUP=${BACKUP:-$(find "$BACKUP_DIR" -maxdepth 1 -type f -name 'multinotes-*.tar*' \
  ! -name '*.partial' -printf '%f\n' | sort | tail -1)}
[ -n "$BACKUP" ] || { echo "No backup in $BACKUP_DIR." >&2; exit 1; }
case $BACKUP in /*) ;; *) BACKUP=$BACKUP_DIR/$BACKUP ;; esac
started=$SECONDS
echo "==> Restoring $BACKUP"

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/multinotes-drill-XXXXXX")
SERVER=""
cleanup() {
  [ -z "$SERVER" ] || { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; }
  if [ "${KEEP_SCRATCH:-}" != 1 ]; then
    # The database first: its credentials file is in the scratch folder.
    [ ! -f "${CNF:-/nonexistent}" ] ||
      mysql --defaults-extra-file="$CNF" -e "DROP DATABASE IF EXISTS \`$DRILL_DB\`" || true
    rm -rf "$SCRATCH"
  else
    echo "Kept $SCRATCH and the database $DRILL_DB."
  fi
}
trap cleanup EXIT

case $BACKUP in
  *.age) age -d -i "${AGE_IDENTITY:?AGE_IDENTITY: the age key that decrypts the backups}" "$BACKUP" |
           tar -C "$SCRATCH" -xf - ;;
  *.gpg) gpg --batch --decrypt "$BACKUP" | tar -C "$SCRATCH" -xf - ;;
  *) tar -C "$SCRATCH" -xf "$BACKUP" ;;
esac
RESTORED=$(find "$SCRATCH" -mindepth 1 -maxdepth 1 -type d -name 'multinotes-*' | head -1)
[ -n "$RESTORED" ] || { echo "The archive holds no multinotes-* folder." >&2; exit 1; }
echo "==> Checking the manifest"
(cd "$RESTORED" && grep -E '^[0-9a-f]{64}  ' MANIFEST | sha256sum --check --quiet)
echo "[PASS] every part matches the manifest's sha256"

# The scratch database, through a private option file.
CNF=$SCRATCH/my.cnf
DATABASE_URL=$DRILL_DB_URL CNF=$CNF python3 - <<'PY'
import os
from urllib.parse import unquote, urlsplit

url = urlsplit(os.environ["DATABASE_URL"])
with open(os.environ["CNF"], "w") as cnf:
    cnf.write("[client]\n")
    if url.hostname and url.hostname != "localhost":
        cnf.write(f"host={url.hostname}\nport={url.port or 3306}\n")
    cnf.write(f"user={unquote(url.username or 'root')}\n")
    if url.password:
        password = unquote(url.password).replace("\\", "\\\\").replace('"', '\\"')
        cnf.write(f'password="{password}"\n')
PY
echo "==> Loading the dump into $DRILL_DB"
mysql --defaults-extra-file="$CNF" -e "DROP DATABASE IF EXISTS \`$DRILL_DB\`;
  CREATE DATABASE \`$DRILL_DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
zcat "$RESTORED/db.sql.gz" | mysql --defaults-extra-file="$CNF" "$DRILL_DB"

echo "==> Unpacking the files"
DATA=$SCRATCH/data
mkdir -p "$DATA"
if [ -f "$RESTORED/data.tar.gz" ]; then
  tar -C "$DATA" --strip-components=1 -xzf "$RESTORED/data.tar.gz"
fi
if [ -f "$RESTORED/objects.tar.gz" ]; then
  # Files that lived in S3 come back into local storage: the same keys under <data>/files.
  mkdir -p "$DATA/files"
  tar -C "$DATA/files" --strip-components=1 -xzf "$RESTORED/objects.tar.gz"
fi

# The app on the scratch copy: production settings, with the database, folder and a Redis
# prefix of its own, and local storage.
drill_url=$(DATABASE_URL=$DRILL_DB_URL DB=$DRILL_DB python3 -c '
import os
from urllib.parse import urlsplit
u = urlsplit(os.environ["DATABASE_URL"])
auth = u.netloc.rsplit("@", 1)[0] + "@" if "@" in u.netloc else "root@"
host = u.hostname if u.hostname and u.hostname != "localhost" else "127.0.0.1"
db = os.environ["DB"]
print(f"mysql+aiomysql://{auth}{host}:{u.port or 3306}/{db}?charset=utf8mb4")')
set -a
# shellcheck disable=SC1090
. "$ENV_FILE"
set +a
export MULTINOTES_DATABASE_URL=$drill_url MULTINOTES_DATA_DIR=$DATA \
  MULTINOTES_STORAGE_BACKEND=local MULTINOTES_REDIS_PREFIX="drill$$:" \
  MULTINOTES_ALLOWED_HOSTS=127.0.0.1 MULTINOTES_COOKIE_SECURE=false \
  MULTINOTES_LOG_LEVEL=WARNING MULTINOTES_PUBLIC_URL="http://127.0.0.1:$PORT"
unset MULTINOTES_TRUSTED_PROXIES PROMETHEUS_MULTIPROC_DIR

echo "==> Starting the app on the restored copy (port $PORT)"
"$PYTHON" -m multinotes.cli serve --host 127.0.0.1 --port "$PORT" >"$SCRATCH/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 60); do
  curl -fs -o /dev/null "http://127.0.0.1:$PORT/healthz" && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$SCRATCH/serve.log" >&2; exit 1; }
  sleep 1
done

echo "==> Checks"
failures=0
[ ! -f "$RESTORED/counts.json" ] || export DRILL_EXPECT_COUNTS=$RESTORED/counts.json
"$PYTHON" "$HERE/backup_tool.py" verify "http://127.0.0.1:$PORT" || failures=$?
if [ "$failures" != 0 ]; then
  echo "Restore drill FAILED ($failures checks) for $(basename "$BACKUP")." >&2
  exit 1
fi
echo "Restore drill passed for $(basename "$BACKUP") in $((SECONDS - started))s."
