#!/usr/bin/env bash
# Back up a production MultinotesAI: a consistent database dump, the data folder, every stored
# file (also when it lives in S3) and a manifest, in one archive encrypted to the operator's
# key, copied off-site; old backups are deleted; a failure is reported. multinotes-backup.timer
# runs it daily as the app user; deploy/restore-drill.sh proves a backup restores.
#
# Settings (environment, or BACKUP_ENV_FILE, default /etc/multinotes/backup.env):
#   ENV_FILE              the app's settings (default /etc/multinotes/env)
#   BACKUP_DIR            where archives go (default /var/backups/multinotes)
#   BACKUP_AGE_RECIPIENT  age public key(s), comma separated, to encrypt to (age1...)
#   BACKUP_GPG_RECIPIENT  or a GPG key id in the running user's keyring
#   BACKUP_UNENCRYPTED=1  allow a plain archive (tests, or a disk that is encrypted anyway)
#   BACKUP_OFFSITE        rsync target (host:/path or /mounted/path) or s3://bucket/prefix
#                         (BACKUP_S3_ENDPOINT_URL, BACKUP_S3_ACCESS_KEY, BACKUP_S3_SECRET_KEY,
#                         BACKUP_S3_REGION); an rsync target that is a local folder is pruned
#                         like BACKUP_DIR, a bucket by its own lifecycle rule
#   KEEP_DAYS             delete archives older than this (default 14) ...
#   KEEP_MIN              ... but always keep the newest KEEP_MIN (default 3)
#   BACKUP_ALERT_CMD      run on failure, with BACKUP_ERROR set to what failed
#   BACKUP_ALERT_EMAIL    mail the failure there through the app's SMTP settings
#   PYTHON                a release's Python, for S3 (default /opt/multinotes/current/venv/bin/python)
#
# The dump holds stored secrets only encrypted; the key that decrypts them
# (MULTINOTES_SECRET_KEY) is deliberately not in the backup. Keep it somewhere else.
set -Eeuo pipefail
umask 077

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BACKUP_ENV_FILE=${BACKUP_ENV_FILE:-/etc/multinotes/backup.env}
if [ -r "$BACKUP_ENV_FILE" ]; then
  set -a
  # shellcheck disable=SC1090
  . "$BACKUP_ENV_FILE"
  set +a
fi
ENV_FILE=${ENV_FILE:-/etc/multinotes/env}
BACKUP_DIR=${BACKUP_DIR:-/var/backups/multinotes}
KEEP_DAYS=${KEEP_DAYS:-14}
KEEP_MIN=${KEEP_MIN:-3}
PYTHON=${PYTHON:-/opt/multinotes/current/venv/bin/python}
TOOL=$HERE/backup_tool.py
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
WORK=""
FAILED_AT=""

alert() {
  local message
  message="MultinotesAI backup on $(hostname) failed: $1"
  echo "$message" >&2
  if [ -n "${BACKUP_ALERT_CMD:-}" ]; then
    BACKUP_ERROR=$message bash -c "$BACKUP_ALERT_CMD" || echo "BACKUP_ALERT_CMD failed too." >&2
  fi
  if [ -n "${BACKUP_ALERT_EMAIL:-}" ]; then
    BACKUP_ERROR=$message "$PYTHON" - <<'PY' || echo "Mailing the alert failed too." >&2
import os, smtplib
from email.message import EmailMessage

from multinotes.settings import Settings

s = Settings()
if not s.smtp_host:
    raise SystemExit("no MULTINOTES_SMTP_HOST to send the alert through")
msg = EmailMessage()
msg["From"], msg["To"] = s.mail_from, os.environ["BACKUP_ALERT_EMAIL"]
msg["Subject"] = "MultinotesAI backup failed"
msg.set_content(os.environ["BACKUP_ERROR"])
smtp_class = smtplib.SMTP_SSL if s.smtp_tls else smtplib.SMTP
with smtp_class(s.smtp_host, s.smtp_port, timeout=30) as smtp:
    if not s.smtp_tls and s.smtp_starttls is not False:
        try:
            smtp.starttls()
        except smtplib.SMTPNotSupportedError:
            if s.smtp_starttls:
                raise
    if s.smtp_username:
        smtp.login(s.smtp_username, s.smtp_password.get_secret_value() if s.smtp_password else "")
    smtp.send_message(msg)
PY
  fi
}

on_exit() {
  local status=$?
  [ -z "$WORK" ] || rm -rf "$WORK"
  rm -f "$BACKUP_DIR"/*.partial 2>/dev/null || true
  if [ "$status" != 0 ]; then
    alert "${FAILED_AT:-exit status $status}"
  fi
}
trap 'FAILED_AT="line $LINENO: $BASH_COMMAND"' ERR
trap on_exit EXIT

[ -r "$ENV_FILE" ] || { FAILED_AT="cannot read $ENV_FILE"; exit 1; }
set -a
# shellcheck disable=SC1090
. "$ENV_FILE"
set +a
DATABASE_URL=${MULTINOTES_DATABASE_URL:?MULTINOTES_DATABASE_URL is not set in $ENV_FILE}
DATA_DIR=${MULTINOTES_DATA_DIR:-/var/lib/multinotes/data}

if [ -n "${BACKUP_AGE_RECIPIENT:-}" ]; then
  SUFFIX=.age
elif [ -n "${BACKUP_GPG_RECIPIENT:-}" ]; then
  SUFFIX=.gpg
elif [ "${BACKUP_UNENCRYPTED:-}" = 1 ]; then
  SUFFIX=""
else
  FAILED_AT="no BACKUP_AGE_RECIPIENT (or BACKUP_GPG_RECIPIENT) in $BACKUP_ENV_FILE: backups are only written encrypted"
  exit 1
fi

mkdir -p "$BACKUP_DIR"
WORK=$(mktemp -d "$BACKUP_DIR/.work-XXXXXX")
NAME=multinotes-$STAMP
mkdir "$WORK/$NAME"
OUT=$WORK/$NAME

# -- database -----------------------------------------------------------------------------------
# Credentials go to mysqldump through a private option file, never on the command line.
DB_NAME=$(DATABASE_URL=$DATABASE_URL CNF=$WORK/my.cnf python3 - <<'PY'
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
echo "Dumping database $DB_NAME"
mysqldump --defaults-extra-file="$WORK/my.cnf" --single-transaction --quick --routines \
  --triggers --events --hex-blob --no-tablespaces --default-character-set=utf8mb4 "$DB_NAME" |
  gzip -6 >"$OUT/db.sql.gz"
# Row counts beside the dump, for the restore drill to compare.
if [ -x "$PYTHON" ]; then
  "$PYTHON" "$TOOL" counts >"$OUT/counts.json"
fi

# -- files --------------------------------------------------------------------------------------
if [ -d "$DATA_DIR" ]; then
  echo "Archiving $DATA_DIR"
  # The app writes files atomically (temporary name, then rename): skip the half-written ones.
  tar -C "$(dirname "$DATA_DIR")" --exclude='*.partial' --exclude='.tmp-*' -czf "$OUT/data.tar.gz" \
    "$(basename "$DATA_DIR")"
else
  echo "No data folder at $DATA_DIR; skipping it."
fi
if [ "${MULTINOTES_STORAGE_BACKEND:-local}" = s3 ]; then
  echo "Copying the stored files out of S3"
  mkdir "$OUT/objects"
  "$PYTHON" "$TOOL" export-objects "$OUT/objects"
  tar -C "$OUT" -czf "$OUT/objects.tar.gz" objects
  rm -rf "$OUT/objects"
fi

{
  echo "stamp=$STAMP"
  echo "host=$(hostname)"
  echo "database=$DB_NAME"
  echo "storage=${MULTINOTES_STORAGE_BACKEND:-local}"
  (cd "$OUT" && sha256sum -- *)
} >"$WORK/MANIFEST"
mv "$WORK/MANIFEST" "$OUT/MANIFEST"

# -- one encrypted archive ----------------------------------------------------------------------
ARCHIVE=$BACKUP_DIR/$NAME.tar$SUFFIX
echo "Writing $ARCHIVE"
case $SUFFIX in
  .age)
    recipients=()
    IFS=, read -r -a keys <<<"$BACKUP_AGE_RECIPIENT"
    for key in "${keys[@]}"; do recipients+=(-r "$key"); done
    tar -C "$WORK" -cf - "$NAME" | age "${recipients[@]}" -o "$ARCHIVE.partial"
    ;;
  .gpg)
    tar -C "$WORK" -cf - "$NAME" |
      gpg --batch --yes --trust-model always --encrypt -r "$BACKUP_GPG_RECIPIENT" \
        -o "$ARCHIVE.partial"
    ;;
  *)
    tar -C "$WORK" -cf "$ARCHIVE.partial" "$NAME"
    ;;
esac
mv "$ARCHIVE.partial" "$ARCHIVE"

# -- off-site -----------------------------------------------------------------------------------
if [ -n "${BACKUP_OFFSITE:-}" ]; then
  echo "Copying to $BACKUP_OFFSITE"
  case $BACKUP_OFFSITE in
    s3://*) "$PYTHON" "$TOOL" put "$ARCHIVE" "${BACKUP_OFFSITE%/}/$(basename "$ARCHIVE")" ;;
    *) rsync -a --partial "$ARCHIVE" "${BACKUP_OFFSITE%/}/" ;;
  esac
fi

# -- retention ----------------------------------------------------------------------------------
# Older than KEEP_DAYS, but never one of the newest KEEP_MIN.
prune() {
  local dir=$1 old
  find "$dir" -maxdepth 1 -type f -name 'multinotes-*.tar*' -printf '%T@ %p\n' | sort -rn |
    tail -n "+$((KEEP_MIN + 1))" | cut -d' ' -f2- |
    while read -r old; do
      if [ -n "$(find "$old" -mtime "+$KEEP_DAYS")" ]; then
        echo "Deleting $old"
        rm -f -- "$old"
      fi
    done
  # Archives of the format before this one (db-*.sql.gz, data-*.tar.gz) age out the same way.
  find "$dir" -maxdepth 1 -type f \( -name 'db-*.sql.gz' -o -name 'data-*.tar.gz' \) \
    -mtime "+$KEEP_DAYS" -print -delete
}
prune "$BACKUP_DIR"
case ${BACKUP_OFFSITE:-} in
  /*) prune "$BACKUP_OFFSITE" ;;
esac

date -u +%Y-%m-%dT%H:%M:%SZ >"$BACKUP_DIR/last-success"
echo "Backup done: $(du -h "$ARCHIVE" | cut -f1) in $ARCHIVE"
