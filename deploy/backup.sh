#!/usr/bin/env bash
# Back up a production MultinotesAI: a consistent MariaDB/MySQL dump and a tarball of the data
# folder, then delete backups older than KEEP_DAYS. Run as root (multinotes-backup.timer does it
# daily); restoring is described in deploy/README.md.
#
#   ENV_FILE    settings to read (default /etc/multinotes/env)
#   BACKUP_DIR  where backups go (default /var/backups/multinotes)
#   KEEP_DAYS   age in days after which backups are deleted (default 14)
#
# The dump holds stored secrets only encrypted; the key that decrypts them
# (MULTINOTES_SECRET_KEY) is deliberately not in the backup. Keep it somewhere else.
set -Eeuo pipefail
trap 'echo "backup.sh failed at line $LINENO: $BASH_COMMAND" >&2' ERR
umask 077

ENV_FILE=${ENV_FILE:-/etc/multinotes/env}
BACKUP_DIR=${BACKUP_DIR:-/var/backups/multinotes}
KEEP_DAYS=${KEEP_DAYS:-14}

[ -r "$ENV_FILE" ] || { echo "Cannot read $ENV_FILE." >&2; exit 1; }
set -a
# shellcheck disable=SC1090
. "$ENV_FILE"
set +a

DATABASE_URL=${MULTINOTES_DATABASE_URL:?MULTINOTES_DATABASE_URL is not set in $ENV_FILE}
DATA_DIR=${MULTINOTES_DATA_DIR:-/var/lib/multinotes/data}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$BACKUP_DIR"

# Credentials go to mysqldump through a private option file, never on the command line.
CNF=$(mktemp)
trap 'rm -f "$CNF" "$BACKUP_DIR"/*.partial' EXIT
DB_NAME=$(DATABASE_URL=$DATABASE_URL CNF=$CNF python3 - <<'PY'
import os
from urllib.parse import unquote, urlsplit

url = urlsplit(os.environ["DATABASE_URL"])
if not url.scheme.startswith("mysql"):
    raise SystemExit(f"backup.sh handles MySQL/MariaDB only, not {url.scheme!r}")
with open(os.environ["CNF"], "w") as cnf:
    cnf.write("[client]\n")
    cnf.write(f"host={url.hostname or 'localhost'}\nport={url.port or 3306}\n")
    cnf.write(f"user={unquote(url.username or '')}\n")
    if url.password:
        password = unquote(url.password).replace("\\", "\\\\").replace('"', '\\"')
        cnf.write(f'password="{password}"\n')
print(url.path.lstrip("/"))
PY
)

DUMP=$BACKUP_DIR/db-$STAMP.sql.gz
echo "Dumping database $DB_NAME to $DUMP"
mysqldump --defaults-extra-file="$CNF" --single-transaction --quick --routines --triggers \
  --events --hex-blob --default-character-set=utf8mb4 "$DB_NAME" | gzip -6 > "$DUMP.partial"
mv "$DUMP.partial" "$DUMP"

if [ -d "$DATA_DIR" ]; then
  ARCHIVE=$BACKUP_DIR/data-$STAMP.tar.gz
  echo "Archiving $DATA_DIR to $ARCHIVE"
  tar -C "$(dirname "$DATA_DIR")" -czf "$ARCHIVE.partial" "$(basename "$DATA_DIR")"
  mv "$ARCHIVE.partial" "$ARCHIVE"
else
  echo "No data folder at $DATA_DIR; skipping it."
fi

echo "Deleting backups older than $KEEP_DAYS days"
find "$BACKUP_DIR" -maxdepth 1 -type f \( -name 'db-*.sql.gz' -o -name 'data-*.tar.gz' \) \
  -mtime "+$KEEP_DAYS" -print -delete

echo "Backup done: $(du -ch "$BACKUP_DIR"/*-"$STAMP".* | tail -1 | cut -f1) in $BACKUP_DIR"
