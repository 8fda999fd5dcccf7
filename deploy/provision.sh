#!/usr/bin/env bash
# Provision (or update) MultinotesAI on a Debian 12 VPS. Run as root, from a checkout:
#
#   bash deploy/provision.sh --domain notes.example.com --letsencrypt-email ops@example.com \
#     --smtp-host smtp.example.com --smtp-user notes@example.com --smtp-from 'Notes <notes@example.com>'
#   (the SMTP password from SMTP_PASSWORD or a prompt; --no-smtp to keep mails in the outbox)
#
# Every flag has an environment twin (DOMAIN, SMTP_HOST, ...). Anything `multinotes check` needs
# that is neither given nor already in /etc/multinotes/env is asked for on a terminal, and is an
# error without one. Safe to run again: generated secrets (secret key, database and Redis
# passwords, metrics token) are kept, given values replace old ones, and the code is installed
# as a new release with deploy/upgrade.sh (no downtime once the first release runs).
#
#   --domain D               host name served by nginx (DOMAIN)
#   --smtp-host H            SMTP server (SMTP_HOST); --smtp-port P (SMTP_PORT, default 587)
#   --smtp-user U            SMTP login (SMTP_USER); its password: SMTP_PASSWORD or a prompt
#   --smtp-from F            From: of every mail (SMTP_FROM, default "MultinotesAI <no-reply@D>")
#   --smtp-tls               implicit TLS, usually port 465 (SMTP_TLS=true)
#   --no-smtp                no mail server: mails stay in <data dir>/outbox (NO_SMTP=1);
#                            `multinotes check` then fails only on mail, which is accepted
#   --trusted-proxies LIST   addresses whose X-Forwarded-* are believed (TRUSTED_PROXIES,
#                            default 127.0.0.1/32,::1/128: nginx on this machine)
#   --letsencrypt-email E    get a Let's Encrypt certificate (LETSENCRYPT_EMAIL); without it,
#                            or if certbot fails, a self-signed one
#   --admin-email E          create this admin and print its password once (ADMIN_EMAIL)
#   --web-ports "P ..."      web process ports (WEB_PORTS, default "8080 8081 8082 8083")
#   --ssh-port P             port ufw keeps open for ssh (SSH_PORT, default 22)
#   --backup-recipient KEY   age public key backups are encrypted to (BACKUP_AGE_RECIPIENT)
#   --offsite TARGET         rsync target or s3://bucket/prefix for backup copies (BACKUP_OFFSITE)
#   --alert-email E          mail backup failures here (BACKUP_ALERT_EMAIL)
#   --source S               checkout or git URL to deploy (SOURCE, default this checkout);
#                            --ref R: branch or tag of a git URL (REF, default main)
#   --extra-packages "..."   more pip requirements, e.g. plugins (EXTRA_PACKAGES)
#   --no-harden              skip ufw, fail2ban and unattended-upgrades (HARDEN=0)
#   --write-env FILE         only write (or update) the settings file FILE and exit; needs
#                            DATABASE_PASSWORD and REDIS_PASSWORD or generates them
set -Eeuo pipefail
trap 'echo "provision.sh failed at line $LINENO: $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

APP_USER=multinotes
PREFIX=/opt/multinotes
STATE=/var/lib/multinotes
ETC=/etc/multinotes
ENV_FILE=$ETC/env
BACKUP_ENV_FILE=$ETC/backup.env
TLS=$ETC/tls
DB_NAME=multinotes
DB_USER=multinotes
ACME_ROOT=/var/www/letsencrypt
BACKUP_DIR=/var/backups/multinotes

step() { printf '\n==> %s\n' "$*"; }
die() { echo "$*" >&2; exit 1; }

# -- options ------------------------------------------------------------------------------------

parse_args() {
  WRITE_ENV_ONLY=""
  while [ $# -gt 0 ]; do
    case $1 in
      --domain) DOMAIN=$2; shift ;;
      --smtp-host) SMTP_HOST=$2; shift ;;
      --smtp-port) SMTP_PORT=$2; shift ;;
      --smtp-user) SMTP_USER=$2; shift ;;
      --smtp-from) SMTP_FROM=$2; shift ;;
      --smtp-tls) SMTP_TLS=true ;;
      --no-smtp) NO_SMTP=1 ;;
      --trusted-proxies) TRUSTED_PROXIES=$2; shift ;;
      --letsencrypt-email) LETSENCRYPT_EMAIL=$2; shift ;;
      --admin-email) ADMIN_EMAIL=$2; shift ;;
      --web-ports) WEB_PORTS=$2; shift ;;
      --ssh-port) SSH_PORT=$2; shift ;;
      --backup-recipient) BACKUP_AGE_RECIPIENT=$2; shift ;;
      --offsite) BACKUP_OFFSITE=$2; shift ;;
      --alert-email) BACKUP_ALERT_EMAIL=$2; shift ;;
      --source) SOURCE=$2; shift ;;
      --ref) REF=$2; shift ;;
      --extra-packages) EXTRA_PACKAGES=$2; shift ;;
      --no-harden) HARDEN=0 ;;
      --write-env) WRITE_ENV_ONLY=$2; shift ;;
      -h|--help) sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
      *) die "Unknown option $1 (see --help)." ;;
    esac
    shift
  done
  SOURCE=${SOURCE:-$(dirname "$HERE")}
  REF=${REF:-main}
  WEB_PORTS=${WEB_PORTS:-8080 8081 8082 8083}
  SSH_PORT=${SSH_PORT:-22}
  HARDEN=${HARDEN:-1}
  NO_SMTP=${NO_SMTP:-}
  SMTP_PORT=${SMTP_PORT:-}
  SMTP_TLS=${SMTP_TLS:-}
  LETSENCRYPT_EMAIL=${LETSENCRYPT_EMAIL:-}
  ADMIN_EMAIL=${ADMIN_EMAIL:-}
  EXTRA_PACKAGES=${EXTRA_PACKAGES:-}
}

# Ask on a terminal for a value that is missing; without a terminal, fail with the flag to use.
ask() {
  local var=$1 question=$2 flag=$3 secret=${4:-}
  [ -n "${!var:-}" ] && return 0
  [ -t 0 ] || die "Missing $flag (or $var): $question"
  local answer
  if [ -n "$secret" ]; then read -r -s -p "$question: " answer; echo; else read -r -p "$question: " answer; fi
  [ -n "$answer" ] || die "$question: an answer is needed."
  printf -v "$var" '%s' "$answer"
}

# -- the settings file --------------------------------------------------------------------------

# The value of KEY in FILE, without its quotes ("" when absent).
env_get() {
  [ -f "$1" ] || return 0
  sed -n "s/^$2=//p" "$1" | tail -1 | sed -e "s/^'\\(.*\\)'\$/\\1/" -e 's/^"\(.*\)"$/\1/'
}

# Set KEY to VALUE in FILE: the line is replaced where it is, or added at the end. Values are
# single-quoted: read literally both by systemd's EnvironmentFile and by `set -a; . FILE`.
env_set() {
  local file=$1 key=$2 value=$3
  case $value in
    *"'"* | *$'\n'*) die "$key: a value with a single quote or a line break cannot be stored." ;;
  esac
  if grep -q "^$key=" "$file"; then
    KEY=$key VALUE=$value awk '
      BEGIN { key = ENVIRON["KEY"]; line = key "='"'"'" ENVIRON["VALUE"] "'"'"'" }
      index($0, key "=") == 1 { print line; next }
      { print }
    ' "$file" >"$file.new"
    cat "$file.new" >"$file"
    rm -f "$file.new"
  else
    printf "%s='%s'\n" "$key" "$value" >>"$file"
  fi
}

# Keep KEY if FILE has it; else set it to VALUE.
env_default() {
  [ -n "$(env_get "$1" "$2")" ] || env_set "$1" "$2" "$3"
}

random_hex() { openssl rand -hex "${1:-24}"; }

# Everything `multinotes check` needs, written to FILE (created 0640 root:multinotes when it
# runs as root). Generated secrets are kept across runs; given values replace old ones.
write_env() {
  local file=$1 existing_smtp
  existing_smtp=$(env_get "$file" MULTINOTES_SMTP_HOST)
  ask DOMAIN "Host name served, e.g. notes.example.com" --domain
  if [ -z "${SMTP_HOST:-}" ] && [ -z "$NO_SMTP" ] && [ -z "$existing_smtp" ]; then
    if [ -t 0 ]; then
      read -r -p "SMTP server for account mails (empty: none, mails stay in the outbox): " SMTP_HOST
      [ -n "$SMTP_HOST" ] || NO_SMTP=1
    else
      die "Missing --smtp-host (or SMTP_HOST): mail for email verification and password resets. Give --no-smtp to run without mail (mails then stay in the outbox folder)."
    fi
  fi
  if [ -n "${SMTP_HOST:-}" ] && [ -n "${SMTP_USER:-}" ]; then
    if [ "$SMTP_USER" = "$(env_get "$file" MULTINOTES_SMTP_USERNAME)" ]; then
      SMTP_PASSWORD=${SMTP_PASSWORD:-$(env_get "$file" MULTINOTES_SMTP_PASSWORD)}
    fi
    ask SMTP_PASSWORD "Password of $SMTP_USER at $SMTP_HOST" SMTP_PASSWORD secret
  fi

  local db_password redis_password
  db_password=${DATABASE_PASSWORD:-$(env_get "$file" MULTINOTES_DATABASE_URL |
    sed -n 's|^[^:]*://[^:]*:\([^@]*\)@.*|\1|p')}
  db_password=${db_password:-$(random_hex 24)}
  redis_password=${REDIS_PASSWORD:-$(env_get "$file" MULTINOTES_REDIS_URL |
    sed -n 's|^redis://:\([^@]*\)@.*|\1|p')}
  redis_password=${redis_password:-$(random_hex 24)}

  local fresh=""
  if [ ! -f "$file" ]; then
    fresh=1
    (umask 027 && cat >"$file" <<EOF
# MultinotesAI settings, read by every multinotes-* unit (see docs/configuration.md).
# Written by deploy/provision.sh on $(date -u +%Y-%m-%d); a re-run keeps the secrets below and
# your own lines. Keep a copy of MULTINOTES_SECRET_KEY somewhere safe and apart from the backups:
# without it stored secrets cannot be decrypted.
EOF
    )
  fi
  env_set "$file" MULTINOTES_MODE production
  env_default "$file" MULTINOTES_SECRET_KEY "$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
  env_set "$file" MULTINOTES_DATABASE_URL \
    "mysql+aiomysql://$DB_USER:$db_password@127.0.0.1:3306/$DB_NAME?charset=utf8mb4"
  env_set "$file" MULTINOTES_REDIS_URL "redis://:$redis_password@127.0.0.1:6379/0"
  env_default "$file" MULTINOTES_DATA_DIR "$STATE/data"
  env_set "$file" MULTINOTES_ALLOWED_HOSTS "$DOMAIN"
  env_set "$file" MULTINOTES_PUBLIC_URL "https://$DOMAIN"
  if [ -n "${TRUSTED_PROXIES:-}" ]; then
    env_set "$file" MULTINOTES_TRUSTED_PROXIES "$TRUSTED_PROXIES"
  else
    env_default "$file" MULTINOTES_TRUSTED_PROXIES "127.0.0.1/32,::1/128"
  fi
  env_default "$file" MULTINOTES_MAX_REQUEST_BYTES 10485760
  env_default "$file" MULTINOTES_METRICS_TOKEN "$(random_hex 24)"
  # One folder for the metrics of every process: one scrape covers them all (README).
  env_default "$file" PROMETHEUS_MULTIPROC_DIR "$STATE/metrics"
  env_default "$file" MULTINOTES_LOG_FORMAT json
  env_default "$file" MULTINOTES_SHUTDOWN_TIMEOUT 600
  if [ -n "${SMTP_HOST:-}" ]; then
    env_set "$file" MULTINOTES_SMTP_HOST "$SMTP_HOST"
    env_set "$file" MULTINOTES_SMTP_PORT "${SMTP_PORT:-$([ "$SMTP_TLS" = true ] && echo 465 || echo 587)}"
    if [ -n "${SMTP_USER:-}" ]; then
      env_set "$file" MULTINOTES_SMTP_USERNAME "$SMTP_USER"
      env_set "$file" MULTINOTES_SMTP_PASSWORD "$SMTP_PASSWORD"
    fi
    [ -z "$SMTP_TLS" ] || env_set "$file" MULTINOTES_SMTP_TLS "$SMTP_TLS"
    env_set "$file" MULTINOTES_MAIL_FROM "${SMTP_FROM:-MultinotesAI <no-reply@$DOMAIN>}"
  elif [ -n "${SMTP_FROM:-}" ]; then
    env_set "$file" MULTINOTES_MAIL_FROM "$SMTP_FROM"
  fi
  if [ "$(id -u)" = 0 ] && id "$APP_USER" >/dev/null 2>&1; then
    chown root:"$APP_USER" "$file"
  fi
  chmod 0640 "$file"
  if [ -n "$fresh" ]; then echo "Wrote $file with new secrets."; else echo "Updated $file."; fi
}

# Backup settings (deploy/backup.sh): written once, then only the given values change.
write_backup_env() {
  local file=$1
  if [ ! -f "$file" ]; then
    (umask 027 && cat >"$file" <<'EOF'
# deploy/backup.sh settings (multinotes-backup.service). See deploy/README.md, "Backups".
# BACKUP_AGE_RECIPIENT: age public key (age1...) the backups are encrypted to; keep the private
#   key off this machine. BACKUP_GPG_RECIPIENT works the same with a key in root's keyring.
# BACKUP_OFFSITE: rsync target (host:/path, /mnt/path) or s3://bucket/prefix (with
#   BACKUP_S3_ENDPOINT_URL, BACKUP_S3_ACCESS_KEY, BACKUP_S3_SECRET_KEY, BACKUP_S3_REGION).
# BACKUP_ALERT_EMAIL / BACKUP_ALERT_CMD: told when a backup fails.
KEEP_DAYS="14"
EOF
    )
  fi
  [ -z "${BACKUP_AGE_RECIPIENT:-}" ] || env_set "$file" BACKUP_AGE_RECIPIENT "$BACKUP_AGE_RECIPIENT"
  [ -z "${BACKUP_OFFSITE:-}" ] || env_set "$file" BACKUP_OFFSITE "$BACKUP_OFFSITE"
  [ -z "${BACKUP_ALERT_EMAIL:-}" ] || env_set "$file" BACKUP_ALERT_EMAIL "$BACKUP_ALERT_EMAIL"
  if [ "$(id -u)" = 0 ] && id "$APP_USER" >/dev/null 2>&1; then chown root:"$APP_USER" "$file"; fi
  chmod 0640 "$file"
}

# -- host ---------------------------------------------------------------------------------------

install_packages() {
  step "System packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    python3 python3-venv python3-pip git rsync curl ca-certificates openssl util-linux \
    nginx mariadb-server mariadb-client redis-server certbot age gnupg logrotate
  if [ "$HARDEN" = 1 ]; then
    apt-get install -y -qq --no-install-recommends ufw fail2ban unattended-upgrades \
      apt-listchanges python3-systemd
  fi
}

create_user_and_folders() {
  step "User and folders"
  if ! id "$APP_USER" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$STATE" --shell /usr/sbin/nologin "$APP_USER"
  fi
  install -d -o "$APP_USER" -g "$APP_USER" -m 0750 "$STATE" "$STATE/data"
  install -d -o root -g "$APP_USER" -m 0750 "$ETC"
  install -d -o "$APP_USER" -g "$APP_USER" -m 0700 "$BACKUP_DIR"
  install -d -m 0700 "$TLS"
  install -d -m 0755 "$PREFIX" "$PREFIX/bin" "$PREFIX/releases" "$ACME_ROOT"
  install -d -m 0750 /var/log/multinotes
}

harden_host() {
  [ "$HARDEN" = 1 ] || { echo "Skipping host hardening (--no-harden)."; return; }
  step "Firewall (ufw: ssh $SSH_PORT, http, https)"
  ufw default deny incoming >/dev/null
  ufw default allow outgoing >/dev/null
  ufw allow "$SSH_PORT/tcp" >/dev/null
  ufw allow 80/tcp >/dev/null
  ufw allow 443/tcp >/dev/null
  ufw --force enable >/dev/null
  ufw status verbose | sed -n '1,12p'

  step "fail2ban (sshd and the app's logins)"
  install -m 0644 "$HERE/fail2ban/filter.d/multinotes-login.conf" /etc/fail2ban/filter.d/
  sed "s/^port = ssh$/port = $SSH_PORT/" "$HERE/fail2ban/jail.d/multinotes.local" \
    >/etc/fail2ban/jail.d/multinotes.local
  systemctl enable --quiet fail2ban
  systemctl restart fail2ban

  step "Unattended security upgrades"
  cat >/etc/apt/apt.conf.d/20auto-upgrades <<'EOF'
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
APT::Periodic::AutocleanInterval "7";
EOF
  systemctl enable --quiet --now unattended-upgrades
}

configure_logs() {
  step "Logs (journald cap, logrotate)"
  install -d /etc/systemd/journald.conf.d
  cat >/etc/systemd/journald.conf.d/multinotes.conf <<'EOF'
# The app logs JSON to the journal; keep a bounded amount of it.
[Journal]
SystemMaxUse=2G
MaxRetentionSec=30day
EOF
  systemctl restart systemd-journald
  cat >/etc/logrotate.d/multinotes <<'EOF'
/var/log/multinotes/*.log {
    weekly
    rotate 8
    compress
    delaycompress
    missingok
    notifempty
    create 0640 root multinotes
}
EOF
}

# -- MariaDB and Redis --------------------------------------------------------------------------

configure_mariadb() {
  step "MariaDB (loopback only, a least-privilege user for the app)"
  cat >/etc/mysql/mariadb.conf.d/60-multinotes.cnf <<'EOF'
[mysqld]
bind-address = 127.0.0.1
local-infile = 0
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
EOF
  systemctl enable --quiet mariadb
  systemctl restart mariadb
  for _ in $(seq 30); do mysqladmin ping >/dev/null 2>&1 && break; sleep 1; done
  local password
  password=$(env_get "$ENV_FILE" MULTINOTES_DATABASE_URL | sed -n 's|^[^:]*://[^:]*:\([^@]*\)@.*|\1|p')
  [ -n "$password" ] || die "No database password in $ENV_FILE."
  # What mysql_secure_installation does, minus root's unix-socket login (Debian's default).
  mysql -e "DELETE FROM mysql.global_priv WHERE User='';
            DROP DATABASE IF EXISTS test;
            DELETE FROM mysql.db WHERE Db='test' OR Db='test\\_%';
            FLUSH PRIVILEGES;
            CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
  local host
  for host in localhost 127.0.0.1; do
    # Its own database only, the statements the app and its migrations use, nothing global.
    mysql -e "CREATE USER IF NOT EXISTS '$DB_USER'@'$host' IDENTIFIED BY '$password';
              ALTER USER '$DB_USER'@'$host' IDENTIFIED BY '$password';
              REVOKE ALL PRIVILEGES, GRANT OPTION FROM '$DB_USER'@'$host';
              GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES,
                    CREATE TEMPORARY TABLES, LOCK TABLES, SHOW VIEW, TRIGGER, EVENT
                ON \`$DB_NAME\`.* TO '$DB_USER'@'$host';"
  done
}

configure_redis() {
  step "Redis (loopback only, password)"
  local password conf=/etc/redis/redis.conf
  password=$(env_get "$ENV_FILE" MULTINOTES_REDIS_URL | sed -n 's|^redis://:\([^@]*\)@.*|\1|p')
  [ -n "$password" ] || die "No Redis password in $ENV_FILE."
  sed -i -e '/^# multinotes begin/,/^# multinotes end/d' "$conf"
  cat >>"$conf" <<EOF
# multinotes begin (deploy/provision.sh rewrites this block)
bind 127.0.0.1 -::1
protected-mode yes
requirepass $password
rename-command FLUSHALL ""
rename-command CONFIG ""
# multinotes end
EOF
  chown redis:redis "$conf"
  chmod 0640 "$conf"
  systemctl enable --quiet redis-server
  systemctl restart redis-server
  for _ in $(seq 30); do
    [ "$(REDISCLI_AUTH=$password redis-cli -h 127.0.0.1 ping 2>/dev/null)" = PONG ] && return
    sleep 1
  done
  die "Redis does not answer after the restart: journalctl -u redis-server"
}

# -- the app ------------------------------------------------------------------------------------

fetch_source() {
  if [ -d "$SOURCE" ]; then
    SRC=$SOURCE
    return
  fi
  SRC=$PREFIX/src
  step "Code from $SOURCE ($REF)"
  if [ -d "$SRC/.git" ]; then
    git -C "$SRC" fetch --quiet origin "$REF"
    git -C "$SRC" checkout --quiet --force FETCH_HEAD
  else
    rm -rf "$SRC"
    git clone --quiet --branch "$REF" "$SOURCE" "$SRC"
  fi
}

install_units() {
  step "systemd units"
  local unit
  for unit in "$HERE"/systemd/*; do install -m 0644 "$unit" /etc/systemd/system/; done
  systemctl daemon-reload
  systemctl enable --quiet multinotes.target multinotes-worker.service \
    multinotes-scheduler.service multinotes-backup.timer
  systemctl start multinotes-backup.timer
  install -m 0755 "$HERE/backup.sh" "$HERE/restore-drill.sh" "$PREFIX/bin/"
  install -m 0644 "$HERE/backup_tool.py" "$PREFIX/bin/"
}

# Is every failed check one we accept? (mail, when --no-smtp was chosen)
check_app() {
  step "multinotes check"
  local out status=0
  out=$(as_app check 2>&1) || status=$?
  echo "$out"
  [ "$status" = 0 ] && ! grep -q '^\[FAIL\]' <<<"$out" && return 0
  if grep '^\[FAIL\]' <<<"$out" | grep -qv '^\[FAIL\] mail:'; then
    die "multinotes check failed: fix what it says (in $ENV_FILE), then run provision.sh again."
  fi
  if [ -n "$NO_SMTP" ]; then
    echo "Mail is off (--no-smtp): mails stay in $STATE/data/outbox until you set MULTINOTES_SMTP_*."
    return 0
  fi
  die "The mail check failed: fix MULTINOTES_SMTP_* (or run with --no-smtp)."
}

as_app() {
  (
    set -a
    # shellcheck disable=SC1090
    . "$ENV_FILE"
    set +a
    cd "$STATE"
    runuser -u "$APP_USER" -- "$PREFIX/current/venv/bin/multinotes" "$@"
  )
}

deploy_release() {
  step "Release (deploy/upgrade.sh)"
  # The first install starts on WEB_PORTS; later runs alternate with WEB_PORTS+100.
  ROOT=$PREFIX ENV_FILE=$ENV_FILE LAUNCHER=systemd PORTS_A=$WEB_PORTS SOURCE=$SRC \
    EXTRA_PACKAGES=$EXTRA_PACKAGES PROXY_CONF=$NGINX_SITE READY_HOST=$DOMAIN \
    bash "$HERE/upgrade.sh"
}

configure_nginx() {
  step "nginx"
  if [ ! -e "$TLS/fullchain.pem" ]; then
    # A self-signed stand-in so nginx can start (and answer the ACME challenge on port 80).
    openssl req -x509 -nodes -newkey rsa:2048 -days 365 -subj "/CN=$DOMAIN" \
      -addext "subjectAltName=DNS:$DOMAIN" \
      -keyout "$TLS/privkey.pem" -out "$TLS/fullchain.pem" 2>/dev/null
    echo "Created a self-signed certificate for $DOMAIN."
  fi
  local ports upstream="" port
  ports=$(cat "$PREFIX/active-ports" 2>/dev/null || echo "$WEB_PORTS")
  for port in $ports; do
    upstream+="    server 127.0.0.1:$port max_fails=3 fail_timeout=5s;"$'\n'
  done
  awk -v servers="$upstream" '
    /# web processes begin/ { print; printf "%s", servers; skip = 1; next }
    /# web processes end/   { skip = 0 }
    !skip
  ' "$HERE/nginx/multinotes.conf" | sed "s/notes\.example\.com/$DOMAIN/g" >"$NGINX_SITE"
  ln -sfn "$NGINX_SITE" /etc/nginx/sites-enabled/multinotes
  rm -f /etc/nginx/sites-enabled/default
  nginx -t -q
  systemctl enable --quiet nginx
  systemctl reload-or-restart nginx
}

get_certificate() {
  [ -n "$LETSENCRYPT_EMAIL" ] || { echo "No --letsencrypt-email: keeping the self-signed certificate."; return; }
  step "Let's Encrypt certificate for $DOMAIN"
  if certbot certonly --webroot -w "$ACME_ROOT" -d "$DOMAIN" --email "$LETSENCRYPT_EMAIL" \
      --agree-tos --non-interactive --keep-until-expiring \
      --deploy-hook "systemctl reload nginx"; then
    ln -sfn "/etc/letsencrypt/live/$DOMAIN/fullchain.pem" "$TLS/fullchain.pem"
    ln -sfn "/etc/letsencrypt/live/$DOMAIN/privkey.pem" "$TLS/privkey.pem"
    nginx -t -q
    systemctl reload nginx
    # Renewal: certbot's own timer, which reloads nginx through the deploy hook above.
    systemctl enable --quiet --now certbot.timer
    certbot renew --dry-run --quiet || echo "Warning: certbot renew --dry-run failed." >&2
  else
    echo "certbot failed (DNS not pointing here yet?): the self-signed certificate stays; run provision.sh again later." >&2
  fi
}

main() {
  parse_args "$@"
  if [ -n "$WRITE_ENV_ONLY" ]; then
    write_env "$WRITE_ENV_ONLY"
    exit 0
  fi
  [ "$(id -u)" = 0 ] || die "Run as root."
  if ! grep -q 'VERSION_ID="12"' /etc/os-release 2>/dev/null || ! grep -q '^ID=debian' /etc/os-release; then
    echo "Warning: written for Debian 12; continuing anyway." >&2
  fi
  NGINX_SITE=/etc/nginx/sites-available/multinotes

  install_packages
  create_user_and_folders
  step "Settings in $ENV_FILE"
  write_env "$ENV_FILE"
  write_backup_env "$BACKUP_ENV_FILE"
  harden_host
  configure_logs
  configure_mariadb
  configure_redis
  fetch_source
  install_units
  # nginx first (with the current upstream), so the release switch can rewrite and reload it.
  configure_nginx
  deploy_release
  # upgrade.sh starts each unit by name; the target that groups them (what `systemctl restart
  # multinotes.target` and a reboot act on) must be active too.
  systemctl start multinotes.target
  check_app
  get_certificate

  if [ -n "$ADMIN_EMAIL" ]; then
    step "Admin account $ADMIN_EMAIL"
    local admin_password
    admin_password=$(openssl rand -base64 18)
    MULTINOTES_ADMIN_PASSWORD=$admin_password as_app admin create --email "$ADMIN_EMAIL"
    echo "Password for $ADMIN_EMAIL (shown once, change it after logging in): $admin_password"
  fi

  step "Done"
  echo "MultinotesAI is running at https://$DOMAIN/ ($(wc -w <<<"$WEB_PORTS") web processes)."
  [ -n "$ADMIN_EMAIL" ] || echo "Register now: the first account on a fresh install becomes the admin."
  echo "Status: systemctl status 'multinotes-*'    Logs: journalctl -u 'multinotes-*' -f"
}

main "$@"
