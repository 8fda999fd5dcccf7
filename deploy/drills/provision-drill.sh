#!/usr/bin/env bash
# Provision drill: deploy/provision.sh on a clean Debian 12, booted with systemd as PID 1 in a
# systemd-nspawn container, then what an operator and a first user would check.
#
#   bash deploy/drills/provision-drill.sh          # as root on a Debian 12 host
#
# 1. a Debian 12 root file system from debootstrap (cached as a tarball; each run starts from a
#    fresh copy of it), with this checkout copied to /root/multinotes (git's tracked and new
#    files, as .ci/wheel-smoke copies them; DRILL_SOURCE=head: only the committed HEAD);
# 2. boots it (`systemd-nspawn -b`, its own network namespace: a veth pair with NAT, so apt and
#    pip reach their registries while ports 80/443/3306/6379 stay the container's own);
# 3. runs `bash deploy/provision.sh --domain notes.drill.test --no-smtp` in it, as the README says
#    (no terminal: every answer comes from flags), and times it;
# 4. checks: every multinotes unit, nginx, MariaDB, Redis and fail2ban active under systemd;
#    through nginx over HTTPS: /healthz, /readyz, the login page, a static file, registering,
#    the verification mail written by the worker, log in, the demo provider switched on by the
#    admin, a new chat and an answer streamed (deploy/drills/provision_journey.py);
# 5. `systemctl restart multinotes.target`, the time until every web process answers /healthz
#    again (nginx's 502 gap), then the returning user's journey again;
# 6. `systemd-analyze security` of each unit, run by the container's own systemd; each must be
#    at most DRILL_MAX_EXPOSURE (4.0); then the host hardening: ufw (deny incoming, 22/80/443
#    only), fail2ban's sshd and login jails, unattended-upgrades, Redis and MariaDB on loopback
#    only (Redis refusing a client without the password, FLUSHALL renamed; the app's MariaDB
#    user limited to its database), logrotate and the journal cap; from the host (another
#    machine on the veth link): HTTPS answers, 3306/6379/8080 do not, and ten refused logins
#    get the host banned through ufw until it is unbanned;
# 7. provision.sh a second time with --backup-recipient (idempotence: secrets kept, a new release
#    without downtime), `systemctl start multinotes-backup` (an age-encrypted archive), and the
#    returning user's journey again;
# 8. every shell block of the operator docs marked `docs-run: drill` (deploy/drills/doc_blocks.py:
#    systemctl and journalctl, the app user's CLI, restoring that backup for real, the plugin
#    kill switch, `git pull && bash deploy/upgrade.sh`, `bash deploy/rollback.sh`), as written
#    but for the placeholders; then everything active and the journey once more;
# 9. powers the container off and removes the NAT rules (DRILL_KEEP=1: leave it running).
#
# Settings (environment):
#   DRILL_DIR       work folder (default /var/tmp/multinotes-drill): base tarball, root fs, logs
#   DRILL_MIRROR    Debian mirror for debootstrap (default: the first URIs of /etc/apt/sources*)
#   DRILL_FRESH=1   debootstrap again instead of reusing DRILL_DIR/bookworm-base-*.tar
#   DRILL_SOURCE    worktree (default) or head
#   DRILL_CHECKOUT  the checkout to copy (default: the one this script is in)
#   DRILL_SUBNET    the veth pair's /30 (default 10.213.77.0: host .1, container .2)
#   DRILL_KEEP=1    leave the container running at the end (enter it: see the last lines)
#
# Needs: debootstrap, systemd-container (systemd-nspawn), iptables, git; root. No systemd on the
# host is needed (the container is not registered with machined). Prints one line per check and
# "DRILL PASSED" at the end; exit 0 only then.
set -Eeuo pipefail
exec </dev/null
trap 'echo "provision-drill.sh failed at line $LINENO: $BASH_COMMAND" >&2' ERR

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=${DRILL_CHECKOUT:-$(cd "$HERE/../.." && pwd)}
DRILL_DIR=${DRILL_DIR:-/var/tmp/multinotes-drill}
DRILL_SOURCE=${DRILL_SOURCE:-worktree}
DRILL_SUBNET=${DRILL_SUBNET:-10.213.77.0}
DRILL_MAX_EXPOSURE=${DRILL_MAX_EXPOSURE:-4.0}
DOMAIN=notes.drill.test
MACHINE=mnotes-drill
ROOTFS=$DRILL_DIR/rootfs
BASE_PACKAGES=systemd,systemd-sysv,dbus,ca-certificates,iproute2,git
BASE=$DRILL_DIR/bookworm-base-$(echo "$BASE_PACKAGES" | md5sum | cut -c1-8).tar
LOG=$DRILL_DIR/container.log
NET_PREFIX=${DRILL_SUBNET%.*}
HOST_IP=$NET_PREFIX.$(( ${DRILL_SUBNET##*.} + 1 ))
CT_IP=$NET_PREFIX.$(( ${DRILL_SUBNET##*.} + 2 ))
VETH=ve-$MACHINE
VETH=${VETH:0:15}
NSPAWN_PID=""
CT_PID=""
STARTED=$SECONDS
FAILURES=0

say() { printf '\n==> %s  %s\n' "$(date -u +%T)" "$*"; }
die() { echo "DRILL FAILED: $*" >&2; exit 1; }
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILURES=$((FAILURES + 1)); }

[ "$(id -u)" = 0 ] || die "run as root."
for tool in debootstrap systemd-nspawn iptables nsenter git; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install debootstrap systemd-container iptables)."
done

# -- the container --------------------------------------------------------------------------------

# Run a command inside the booted container, as root, with a clean environment.
in_ct() {
  nsenter --target "$CT_PID" --mount --uts --ipc --net --pid -- \
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 TERM=dumb "$@"
}

cleanup() {
  local rc=$?
  if [ "${DRILL_KEEP:-}" = 1 ] && [ -n "$CT_PID" ]; then
    echo "The container stays up (DRILL_KEEP=1): nsenter -t $CT_PID -m -u -i -n -p bash"
    echo "Stop it with: kill $NSPAWN_PID"
    return "$rc"
  fi
  if [ -n "$CT_PID" ] && kill -0 "$CT_PID" 2>/dev/null; then
    in_ct systemctl poweroff --no-block >/dev/null 2>&1 || true
  fi
  if [ -n "$NSPAWN_PID" ]; then
    for _ in $(seq 60); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 1; done
    kill "$NSPAWN_PID" 2>/dev/null || true
    wait "$NSPAWN_PID" 2>/dev/null || true
  fi
  iptables -t nat -D POSTROUTING -s "$DRILL_SUBNET/30" ! -o "$VETH" -j MASQUERADE 2>/dev/null || true
  iptables -D FORWARD -i "$VETH" -j ACCEPT 2>/dev/null || true
  iptables -D FORWARD -o "$VETH" -j ACCEPT 2>/dev/null || true
  return "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT  # through the exit trap: no container or NAT rule is left behind

mirror() {
  if [ -n "${DRILL_MIRROR:-}" ]; then echo "$DRILL_MIRROR"; return; fi
  local uri
  uri=$({ cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true; } |
    sed -n -e 's/^URIs: *\([^ ]*debian\/*\)$/\1/p' -e 's/^deb \(http[^ ]*debian\/*\) bookworm .*/\1/p' |
    head -1)
  echo "${uri:-http://deb.debian.org/debian}"
}

make_rootfs() {
  mkdir -p "$DRILL_DIR"
  if [ ! -s "$BASE" ] || [ "${DRILL_FRESH:-}" = 1 ]; then
    say "debootstrap bookworm from $(mirror)"
    rm -rf "$DRILL_DIR/base"
    debootstrap --include="$BASE_PACKAGES" bookworm "$DRILL_DIR/base" "$(mirror)" >"$DRILL_DIR/debootstrap.log" 2>&1 ||
      die "debootstrap failed: $DRILL_DIR/debootstrap.log"
    tar -C "$DRILL_DIR/base" -cf "$BASE.new" . && mv "$BASE.new" "$BASE"
    rm -rf "$DRILL_DIR/base"
  fi
  say "A fresh root file system from $BASE"
  rm -rf "$ROOTFS"
  mkdir -p "$ROOTFS"
  tar -C "$ROOTFS" -xf "$BASE"
  echo "$MACHINE" >"$ROOTFS/etc/hostname"
  # The mirror the host uses (the base image's sources.list names it already).
  local nameserver
  nameserver=$(sed -n 's/^nameserver *//p' /etc/resolv.conf | head -1)
  rm -f "$ROOTFS/etc/resolv.conf"
  echo "nameserver ${nameserver:-1.1.1.1}" >"$ROOTFS/etc/resolv.conf"
  # The veth address at boot, before provision.sh needs the network.
  mkdir -p "$ROOTFS/etc/network/interfaces.d"
  cat >"$ROOTFS/etc/network/interfaces.d/host0" <<EOF
auto host0
iface host0 inet static
    address $CT_IP/30
    gateway $HOST_IP
EOF

  # A host whose HTTPS goes through an inspecting proxy trusts its CA from
  # /usr/local/share/ca-certificates; so must the container, for pip (which otherwise trusts
  # only its own bundle). A VPS with direct access needs neither.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
    chroot "$ROOTFS" update-ca-certificates >/dev/null 2>&1
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$ROOTFS/etc/pip.conf"
    echo "Copied the host's extra CA certificates (an HTTPS-inspecting proxy) into the container."
  fi

  say "Copying the checkout ($DRILL_SOURCE) to /root/multinotes"
  mkdir -p "$ROOTFS/root/multinotes"
  if [ "$DRILL_SOURCE" = head ]; then
    git -C "$CHECKOUT" archive HEAD | tar -C "$ROOTFS/root/multinotes" -xf -
  else
    (cd "$CHECKOUT" && git ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done |
      xargs -0 cp --parents -t "$ROOTFS/root/multinotes")
  fi
  echo "$(git -C "$CHECKOUT" rev-parse --short HEAD) ($DRILL_SOURCE)" >"$ROOTFS/root/multinotes/.drill-source"
  # An operator's checkout is a git clone: give it an origin, so `git pull` works as documented.
  (cd "$ROOTFS/root/multinotes" && git init -q -b main && git add -A &&
    git -c user.name=drill -c user.email=drill@drill.test commit -q -m "drill source" &&
    git clone -q --bare . "$ROOTFS/srv/multinotes.git" &&
    git remote add origin /srv/multinotes.git && git update-ref refs/remotes/origin/main HEAD &&
    git config branch.main.remote origin && git config branch.main.merge refs/heads/main)
  # The drill's own checker, whatever the copied source holds.
  install -m 0644 "$HERE/provision_journey.py" "$HERE/doc_blocks.py" "$ROOTFS/root/"
}

boot() {
  say "Booting it: systemd-nspawn -b (systemd as PID 1)"
  systemd-nspawn --quiet --directory="$ROOTFS" --machine="$MACHINE" --register=no --keep-unit \
    --network-veth --console=passive --boot >"$LOG" 2>&1 &
  NSPAWN_PID=$!
  local waited=0
  while [ -z "$CT_PID" ]; do
    kill -0 "$NSPAWN_PID" 2>/dev/null || die "systemd-nspawn exited: $(tail -5 "$LOG")"
    CT_PID=$(ps -e -o pid=,ppid=,comm= | awk -v p="$NSPAWN_PID" '$2 == p && $3 == "systemd" {print $1}')
    sleep 1
    waited=$((waited + 1))
    [ "$waited" -lt 60 ] || die "no systemd inside the container after 60s: $(tail -5 "$LOG")"
  done
  ip link show "$VETH" >/dev/null 2>&1 || die "no $VETH on the host"
  ip addr replace "$HOST_IP/30" dev "$VETH"
  ip link set "$VETH" up
  sysctl -q -w net.ipv4.ip_forward=1
  iptables -t nat -C POSTROUTING -s "$DRILL_SUBNET/30" ! -o "$VETH" -j MASQUERADE 2>/dev/null ||
    iptables -t nat -A POSTROUTING -s "$DRILL_SUBNET/30" ! -o "$VETH" -j MASQUERADE
  iptables -C FORWARD -i "$VETH" -j ACCEPT 2>/dev/null || iptables -I FORWARD -i "$VETH" -j ACCEPT
  iptables -C FORWARD -o "$VETH" -j ACCEPT 2>/dev/null || iptables -I FORWARD -o "$VETH" -j ACCEPT
  local state
  state=$(in_ct systemctl is-system-running --wait 2>/dev/null || true)
  echo "systemd in the container: PID $CT_PID on the host, system $state"
  in_ct bash -c 'ps -p 1 -o comm= | grep -qx systemd' || die "PID 1 in the container is not systemd"
  pass "booted Debian $(cat "$ROOTFS/etc/debian_version") with systemd $(in_ct systemctl --version | head -1 | cut -d' ' -f2) as PID 1"
  for _ in $(seq 30); do
    in_ct ip route get 1.1.1.1 >/dev/null 2>&1 && break
    sleep 1
  done
  in_ct bash -c "ip addr show host0 | grep -q '$CT_IP'" ||
    in_ct bash -c "ip addr add $CT_IP/30 dev host0; ip link set host0 up; ip route replace default via $HOST_IP"
}

# -- the checks ---------------------------------------------------------------------------------

provision() {
  local what=$1 took start=$SECONDS
  shift
  say "provision.sh ($what) $*"
  if in_ct bash -c 'cd /root/multinotes && bash deploy/provision.sh "$@"' provision \
      --domain "$DOMAIN" --no-smtp "$@" >"$DRILL_DIR/provision-$what.log" 2>&1; then
    took=$((SECONDS - start))
    pass "provision.sh ($what) finished in ${took}s"
    grep -E '^==>|Done|running at|Register now' "$DRILL_DIR/provision-$what.log" | sed 's/^/    /' | tail -40
  else
    tail -60 "$DRILL_DIR/provision-$what.log"
    die "provision.sh ($what) failed after $((SECONDS - start))s: $DRILL_DIR/provision-$what.log"
  fi
}

units_active() {
  say "Services under systemd"
  local unit units state
  units=$(in_ct bash -c "systemctl list-units --plain --no-legend --type=service 'multinotes-*' | awk '{print \$1}'")
  for unit in $units nginx.service mariadb.service redis-server.service fail2ban.service \
      multinotes.target multinotes-backup.timer; do
    state=$(in_ct systemctl is-active "$unit" || true)
    if [ "$state" = active ]; then pass "$unit active"; else fail "$unit is $state"; fi
  done
  in_ct systemctl --failed --no-legend --plain | sed 's/^/    failed: /' || true
}

journey() {
  say "A user's journey through nginx (${1:-first visit})"
  # shellcheck disable=SC2086  # optional flag
  in_ct python3 /root/provision_journey.py --domain "$DOMAIN" ${1:-} ||
    { FAILURES=$((FAILURES + 1)); in_ct journalctl -u 'multinotes-*' -n 40 --no-pager | tail -40; }
}

restart() {
  say "systemctl restart multinotes.target"
  local start=$SECONDS returned ports port waiting
  in_ct systemctl restart multinotes.target
  returned=$((SECONDS - start))
  pass "restart returned in ${returned}s"
  # The restart gap: nginx answers 502 (for a POST, which it does not retry on the next process)
  # until every web process listens. Measure it: the journey then starts after it.
  ports=$(in_ct bash -c "systemctl list-units --plain --no-legend 'multinotes-web@*' | sed -n 's/^multinotes-web@\([0-9]*\)\.service.*/\1/p'")
  for _ in $(seq 120); do
    waiting=""
    for port in $ports; do
      [ "$(in_ct curl -s -o /dev/null --max-time 2 -w '%{http_code}' -H "Host: $DOMAIN" \
        "http://127.0.0.1:$port/healthz" || true)" = 200 ] || waiting="$waiting $port"
    done
    [ -n "$waiting" ] || break
    sleep 1
  done
  if [ -z "$waiting" ]; then
    pass "every web process (ports $(xargs <<<"$ports")) answers $((SECONDS - start))s after the restart began"
  else
    fail "web processes on ports$waiting still not answering $((SECONDS - start))s after the restart"
  fi
  units_active
}

security() {
  say "systemd-analyze security (the container's systemd, units as installed)"
  local unit score
  for unit in multinotes-web@8080.service multinotes-worker.service \
      multinotes-scheduler.service multinotes-backup.service; do
    score=$(in_ct systemd-analyze security --no-pager "$unit" 2>&1 |
      sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    if [ -n "$score" ] && awk -v s="$score" -v m="$DRILL_MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'; then
      pass "$unit exposure $score (at most $DRILL_MAX_EXPOSURE)"
    else
      fail "$unit exposure ${score:-unknown} (at most $DRILL_MAX_EXPOSURE)"
    fi
  done
}

# The HTTP status of a request from the host to the container's nginx (000: no answer).
host_https_status() {
  local path=$1
  shift
  curl -sk --max-time 10 --resolve "$DOMAIN:443:$CT_IP" -o /dev/null -w '%{http_code}' "$@" \
    "https://$DOMAIN$path" || true
}

# What provision.sh's hardening left, looked at from inside and, for the firewall and the login
# jail, from outside: the host is another machine on the veth link.
hardening() {
  say "Host hardening (inside the container, and from the host at $CT_IP)"
  local status allowed jails listening grants out
  status=$(in_ct ufw status verbose || true)
  if grep -q '^Status: active' <<<"$status" && grep -q 'Default: deny (incoming)' <<<"$status"; then
    pass "ufw active, incoming denied by default"
  else
    fail "ufw: $status"
  fi
  allowed=$(in_ct ufw status | awk '/ALLOW/ {print $1}' | sort -u | xargs || true)
  if [ "$allowed" = "22/tcp 443/tcp 80/tcp" ]; then pass "ufw allows only $allowed"; else fail "ufw allows: $allowed"; fi
  jails=$(in_ct fail2ban-client status | sed -n 's/.*Jail list:[[:space:]]*//p' || true)
  if grep -qw sshd <<<"$jails" && grep -qw multinotes-login <<<"$jails"; then
    pass "fail2ban jails: $jails"
  else
    fail "fail2ban jails: $jails"
  fi
  if in_ct apt-config dump APT::Periodic::Unattended-Upgrade | grep -q '"1"' &&
      [ "$(in_ct systemctl is-enabled unattended-upgrades)" = enabled ]; then
    pass "unattended-upgrades enabled, daily"
  else
    fail "unattended-upgrades not enabled"
  fi

  listening=$(in_ct ss -ltnH 'sport = :6379' | awk '{print $4}' | sort | xargs || true)
  if [ "$listening" = "127.0.0.1:6379 [::1]:6379" ]; then pass "Redis listens on loopback only: $listening"; else fail "Redis listens on: $listening"; fi
  out=$(in_ct redis-cli -h 127.0.0.1 ping 2>&1 || true)
  if grep -q NOAUTH <<<"$out"; then pass "Redis refuses a client without the password"; else fail "Redis without a password: $out"; fi
  # The password from the app's URL, read as provision.sh reads it (redis-cli -u sends an empty
  # user name with it, which Redis refuses).
  # shellcheck disable=SC2016  # expanded inside the container
  out=$(in_ct bash -c 'set -a; . /etc/multinotes/env
    export REDISCLI_AUTH=$(sed -n "s|^redis://:\([^@]*\)@.*|\1|p" <<<"$MULTINOTES_REDIS_URL")
    redis-cli -h 127.0.0.1 ping; redis-cli -h 127.0.0.1 flushall' 2>&1 || true)
  if grep -q '^PONG' <<<"$out" && grep -qi 'unknown command' <<<"$out"; then
    pass "Redis answers the app's password; FLUSHALL is renamed away"
  else
    fail "Redis with the app's password: $out"
  fi

  listening=$(in_ct ss -ltnH 'sport = :3306' | awk '{print $4}' | sort | xargs || true)
  if [ "$listening" = "127.0.0.1:3306" ]; then pass "MariaDB listens on loopback only"; else fail "MariaDB listens on: $listening"; fi
  grants=$(in_ct mysql -N -e "SHOW GRANTS FOR 'multinotes'@'localhost'; SHOW GRANTS FOR 'multinotes'@'127.0.0.1'" 2>&1 || true)
  # shellcheck disable=SC2016  # MariaDB's backquotes, literally
  if grep -q 'ON `multinotes`\.\*' <<<"$grants" && ! grep -q 'GRANT OPTION' <<<"$grants" &&
      ! grep 'ON \*\.\*' <<<"$grants" | grep -qv '^GRANT USAGE ON'; then
    pass "MariaDB user multinotes: its own database only, nothing global, no GRANT OPTION"
  else
    fail "MariaDB grants: $grants"
  fi
  out=$(in_ct mysql -N -e "SELECT COUNT(*) FROM mysql.global_priv WHERE User=''; SHOW DATABASES LIKE 'test'" 2>&1 | xargs || true)
  if [ "$out" = 0 ]; then pass "MariaDB: no anonymous users, no test database"; else fail "MariaDB anonymous users / test database: $out"; fi

  if in_ct logrotate -d /etc/logrotate.d/multinotes >/dev/null 2>&1 &&
      in_ct grep -q '^SystemMaxUse=' /etc/systemd/journald.conf.d/multinotes.conf; then
    pass "log rotation: logrotate accepts /etc/logrotate.d/multinotes, the journal is capped"
  else
    fail "log rotation: logrotate -d /etc/logrotate.d/multinotes or the journald cap"
  fi

  # From the host: HTTPS answers, nothing else does.
  if [ "$(host_https_status /healthz)" = 200 ]; then
    pass "from the host: HTTPS answers at $CT_IP:443"
  else
    fail "from the host: no HTTPS at $CT_IP:443"
  fi
  local port open=""
  for port in 3306 6379 8080; do
    if timeout 4 bash -c "exec 3<>/dev/tcp/$CT_IP/$port" 2>/dev/null; then open="$open $port"; fi
  done
  if [ -z "$open" ]; then pass "from the host: MariaDB, Redis and the web processes are unreachable"; else fail "from the host, open:$open"; fi

  # The login jail, for real: ten refused logins from the host ban it (through ufw) at once.
  local i code codes="" banned=""
  for i in $(seq 10); do
    code=$(host_https_status /api/auth/login -H 'Content-Type: application/json' \
      -H "Origin: https://$DOMAIN" --data '{"email": "nobody@example.com", "password": "wrong password"}')
    codes="$codes $code"
  done
  for i in $(seq 30); do
    if in_ct fail2ban-client status multinotes-login | grep -q "Banned IP list:.*\b$HOST_IP\b"; then banned=yes; break; fi
    sleep 1
  done
  if [ -n "$banned" ] && [ "$(host_https_status /healthz)" != 200 ]; then
    pass "10 refused logins from the host (HTTP$codes): banned within ${i}s, its HTTPS now blocked"
  else
    fail "10 refused logins from the host (HTTP$codes): banned=${banned:-no}"
    in_ct fail2ban-client status multinotes-login || true
  fi
  in_ct fail2ban-client set multinotes-login unbanip "$HOST_IP" >/dev/null 2>&1 || true
  if [ "$(host_https_status /healthz)" = 200 ]; then
    pass "unbanned (fail2ban-client set multinotes-login unbanip), the host gets through again"
  else
    fail "the host stays blocked after unbanip"
  fi
}

backup() {
  say "Backups: an age key, provision.sh --backup-recipient, systemctl start multinotes-backup"
  in_ct bash -c 'cd /root && rm -f backup-key.txt && age-keygen -o backup-key.txt 2>/dev/null'
  local recipient result start
  recipient=$(in_ct age-keygen -y /root/backup-key.txt)
  provision again --backup-recipient "$recipient"
  start=$SECONDS
  in_ct systemctl start multinotes-backup.service || true
  result=$(in_ct systemctl show -p Result --value multinotes-backup.service)
  if [ "$result" = success ]; then
    pass "multinotes-backup.service ran under systemd in $((SECONDS - start))s: $(in_ct bash -c 'ls /var/backups/multinotes/*.tar.age | tail -1')"
  else
    fail "multinotes-backup.service: $result"
    in_ct journalctl -u multinotes-backup.service -n 30 --no-pager
  fi
  STAMP=$(in_ct bash -c 'ls /var/backups/multinotes/ | sed -n "s/^multinotes-\(.*\)\.tar\.age$/\1/p" | sort | tail -1')
  [ -z "$STAMP" ] || in_ct cp "/var/backups/multinotes/multinotes-$STAMP.tar.age" /root/
}

# The kill-switch block of the docs names "badplugin": make it real, a plugin whose import
# fails, installed into the running release as a third-party plugin would be.
broken_plugin() {
  say "A plugin that fails at import (badplugin), pip-installed into the running release"
  mkdir -p "$ROOTFS/root/badplugin/multinotes_badplugin"
  cat >"$ROOTFS/root/badplugin/pyproject.toml" <<'EOF'
[project]
name = "multinotes-badplugin"
version = "0.1.0"

[project.entry-points.multinotes]
badplugin = "multinotes_badplugin"

[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"
EOF
  echo 'raise RuntimeError("badplugin fails at import, on purpose")' \
    >"$ROOTFS/root/badplugin/multinotes_badplugin/__init__.py"
  in_ct /opt/multinotes/current/venv/bin/pip install --quiet /root/badplugin
  in_ct systemctl restart multinotes.target
  local listed
  listed=$(in_ct runuser -u multinotes -- bash -c 'set -a; . /etc/multinotes/env; cd ~; /opt/multinotes/current/venv/bin/multinotes plugins list' 2>/dev/null | grep '^badplugin ' || true)
  if grep -q failed <<<"$listed"; then pass "badplugin is marked failed: $listed"; else fail "badplugin: $listed"; fi
  units_active
}

docs_blocks() {
  say "The operator docs' shell blocks marked 'docs-run: drill', as written"
  in_ct python3 /root/doc_blocks.py drill /root/multinotes "<stamp>=${STAMP:-none}" \
    >"$ROOTFS/root/docs-blocks.sh"
  local rc=0
  in_ct bash /root/docs-blocks.sh >"$DRILL_DIR/docs-blocks.log" 2>&1 || rc=$?
  grep -E '^(PASS|FAIL) docs block' "$DRILL_DIR/docs-blocks.log" || true
  if [ "$rc" != 0 ]; then
    FAILURES=$((FAILURES + rc))
    tail -40 "$DRILL_DIR/docs-blocks.log"
  fi
  # Undo the kill-switch example (it named a plugin that does not exist), as an operator would.
  in_ct sed -i '/^MULTINOTES_DISABLE_PLUGINS=badplugin$/d' /etc/multinotes/env
  in_ct systemctl restart multinotes.target
}

make_rootfs
boot
provision first
units_active
journey
restart
journey --login-only
security
hardening
backup
units_active
journey --login-only
broken_plugin
docs_blocks
units_active
journey --login-only

say "Summary"
echo "source: $(cat "$ROOTFS/root/multinotes/.drill-source"), total ${SECONDS}s (since start: $((SECONDS - STARTED))s)"
if [ "$FAILURES" -gt 0 ]; then
  echo "DRILL FAILED: $FAILURES check(s) failed (logs in $DRILL_DIR)"
  exit 1
fi
echo "DRILL PASSED"
