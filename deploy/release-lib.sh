# shellcheck shell=bash
# Shared by upgrade.sh and rollback.sh (sourced, not run): releases, web processes, the proxy.
#
# Layout under ROOT (default /opt/multinotes):
#   releases/<UTC stamp>/venv   one virtualenv per release, never changed once installed
#   current -> releases/<...>   the release the services run (the units start current/venv)
#   previous -> releases/<...>  the release before it: what rollback.sh returns to
#   active-ports                the ports the proxy sends requests to right now
#
# Two sets of ports take turns (PORTS_A, PORTS_B): a new release starts on the idle set, is
# health-gated on /readyz, the proxy is switched to it (nginx reload: graceful), and only then
# are the old processes sent SIGTERM. They stop listening at once and let the answers they are
# streaming finish (MULTINOTES_SHUTDOWN_TIMEOUT), so no request and no stream is cut.
#
# Settings (environment):
#   ROOT            install root (default /opt/multinotes)
#   ENV_FILE        the app's settings (default /etc/multinotes/env)
#   LAUNCHER        systemd (default: multinotes-web@<port> units) or background (plain
#                   processes with pid files in ROOT/run, for a drill without systemd)
#   PORTS_A         first set of web ports (default "8080 8081 8082 8083")
#   PORTS_B         second set (default: each port of PORTS_A plus 100)
#   PROXY_CONF      proxy config whose lines between "# web processes begin" and
#                   "# web processes end" list the web processes
#                   (default /etc/nginx/sites-available/multinotes; "none": no proxy)
#   PROXY_RELOAD    command that reloads the proxy (default: nginx -t && systemctl reload nginx)
#   PROXY_SETTLE    seconds between the proxy reload and the old processes' SIGTERM (default 2)
#   READY_HOST      Host header for the /readyz probe (default: first MULTINOTES_ALLOWED_HOSTS)
#   READY_TIMEOUT   seconds a new process has to answer /readyz (default 60)
#   GATE_CMD        optional command run after /readyz, before the proxy moves (NEW_PORTS holds
#                   the new ports): a smoke test; failing it aborts like a failed /readyz
#   DRAIN_WAIT      seconds to wait for old processes to finish their streams and exit
#                   (default 660; 0: do not wait, they drain on their own)
#   APP_USER        user that runs CLI commands under systemd (default multinotes)

ROOT=${ROOT:-/opt/multinotes}
ENV_FILE=${ENV_FILE:-/etc/multinotes/env}
LAUNCHER=${LAUNCHER:-systemd}
PORTS_A=${PORTS_A:-8080 8081 8082 8083}
if [ -z "${PORTS_B:-}" ]; then
  PORTS_B=""
  for port in $PORTS_A; do PORTS_B+="${PORTS_B:+ }$((port + 100))"; done
fi
PROXY_CONF=${PROXY_CONF:-/etc/nginx/sites-available/multinotes}
PROXY_RELOAD=${PROXY_RELOAD:-nginx -t -q && systemctl reload nginx}
READY_TIMEOUT=${READY_TIMEOUT:-60}
PROXY_SETTLE=${PROXY_SETTLE:-2}
DRAIN_WAIT=${DRAIN_WAIT:-660}
APP_USER=${APP_USER:-multinotes}
RUN_DIR=$ROOT/run

step() { printf '==> %s  %s\n' "$(date -u +%T)" "$*"; }
die() { echo "$*" >&2; exit 1; }

# The value of one setting in ENV_FILE (without running the file).
env_value() {
  sed -n "s/^$1=//p" "$ENV_FILE" | tail -1 | sed -e "s/^'\\(.*\\)'\$/\\1/" -e 's/^"\(.*\)"$/\1/'
}

READY_HOST=${READY_HOST:-$(env_value MULTINOTES_ALLOWED_HOSTS | cut -d, -f1)}
READY_HOST=${READY_HOST:-127.0.0.1}
[ "$READY_HOST" = "*" ] && READY_HOST=127.0.0.1

release_of() { readlink -f "$ROOT/$1" 2>/dev/null || true; }

# The ports serving now: none on a first install (an install from before releases runs on
# PORTS_A without the file).
active_ports() {
  if [ -s "$ROOT/active-ports" ]; then cat "$ROOT/active-ports"; return; fi
  local port
  for port in $PORTS_A; do
    if process_running "web@$port"; then echo "$PORTS_A"; return; fi
  done
}

idle_ports() {
  if [ "$(active_ports)" = "$PORTS_A" ]; then echo "$PORTS_B"; else echo "$PORTS_A"; fi
}

# Run a multinotes command of RELEASE with the app's settings, as the app user under systemd.
run_cli() {
  local release=$1
  shift
  (
    set -a
    # shellcheck disable=SC1090
    . "$ENV_FILE"
    set +a
    if [ "$LAUNCHER" = systemd ]; then
      cd /var/lib/multinotes || exit 1
      runuser -u "$APP_USER" -- "$release/venv/bin/multinotes" "$@"
    else
      cd "$ROOT" || exit 1
      "$release/venv/bin/multinotes" "$@"
    fi
  )
}

# -- processes ----------------------------------------------------------------------------------

# Start NAME (web@<port>, worker or scheduler) from RELEASE. Under systemd the units run
# ROOT/current, so `current` must point at RELEASE first.
start_process() {
  local name=$1 release=$2
  if [ "$LAUNCHER" = systemd ]; then
    systemctl enable --quiet "multinotes-$name.service"
    systemctl restart "multinotes-$name.service"
    return
  fi
  mkdir -p "$RUN_DIR"
  local args
  case $name in
    web@*) args=(serve --host 127.0.0.1 --port "${name#web@}") ;;
    *) args=("$name") ;;
  esac
  (
    set -a
    # shellcheck disable=SC1090
    . "$ENV_FILE"
    set +a
    cd "$ROOT" || exit 1
    exec 9>&-  # the deploy lock stays with the script, not with the processes it starts
    exec nohup "$release/venv/bin/multinotes" "${args[@]}" </dev/null >>"$RUN_DIR/$name.log" 2>&1
  ) &
  echo $! >"$RUN_DIR/$name.pid"
}

# Send NAME its SIGTERM without waiting: a web process stops listening and drains.
stop_process() {
  local name=$1
  if [ "$LAUNCHER" = systemd ]; then
    systemctl disable --quiet "multinotes-$name.service" 2>/dev/null || true
    systemctl stop --no-block "multinotes-$name.service"
    return
  fi
  local pid
  pid=$(cat "$RUN_DIR/$name.pid" 2>/dev/null) || return 0
  kill -TERM "$pid" 2>/dev/null || true
}

process_running() {
  local name=$1
  if [ "$LAUNCHER" = systemd ]; then
    local state
    state=$(systemctl show -p ActiveState --value "multinotes-$name.service")
    [ "$state" = active ] || [ "$state" = deactivating ] || [ "$state" = activating ]
    return
  fi
  local pid
  pid=$(cat "$RUN_DIR/$name.pid" 2>/dev/null) || return 1
  kill -0 "$pid" 2>/dev/null
}

process_known() {
  if [ "$LAUNCHER" = systemd ]; then
    systemctl cat "multinotes-$1.service" >/dev/null 2>&1
  else
    [ -e "$RUN_DIR/$1.pid" ]
  fi
}

wait_ready() {
  local port=$1 waited=0
  until curl -fs -o /dev/null --max-time 2 -H "Host: $READY_HOST" \
      "http://127.0.0.1:$port/readyz?scope=web"; do
    waited=$((waited + 1))
    [ "$waited" -lt "$READY_TIMEOUT" ] || return 1
    sleep 1
  done
}

# -- proxy --------------------------------------------------------------------------------------

point_proxy_at() {
  local ports=$1
  if [ "$PROXY_CONF" != none ]; then
    local servers="" port
    for port in $ports; do
      servers+="    server 127.0.0.1:$port max_fails=3 fail_timeout=5s;"$'\n'
    done
    awk -v servers="$servers" '
      /# web processes begin/ { print; printf "%s", servers; skip = 1; next }
      /# web processes end/   { skip = 0 }
      !skip
    ' "$PROXY_CONF" >"$PROXY_CONF.new"
    grep -q "127.0.0.1:${ports%% *} " "$PROXY_CONF.new" ||
      die "$PROXY_CONF has no '# web processes begin/end' block to rewrite."
    cat "$PROXY_CONF.new" >"$PROXY_CONF"
    rm -f "$PROXY_CONF.new"
    bash -c "$PROXY_RELOAD"
    # A reload returns once nginx is signalled; its old workers may still take a request for
    # a moment and send it to the old ports, so those keep listening a little longer.
    sleep "$PROXY_SETTLE"
  fi
  echo "$ports" >"$ROOT/active-ports.new"
  mv "$ROOT/active-ports.new" "$ROOT/active-ports"
}

# -- the switch ---------------------------------------------------------------------------------

# Make RELEASE the running one: start it on the idle ports, gate on /readyz (and GATE_CMD),
# point the proxy at it, drain the old web processes, restart worker and scheduler from it. On
# a failed gate the old release keeps serving and the new processes are stopped.
switch_to() {
  local release=$1 old new port name was_current
  [ -x "$release/venv/bin/multinotes" ] || die "$release has no venv/bin/multinotes."
  old=$(active_ports)
  new=$(idle_ports)
  was_current=$(release_of current)

  step "Starting $(basename "$release") on ports $new"
  ln -sfn "$release" "$ROOT/current.new" && mv -T "$ROOT/current.new" "$ROOT/current"
  # /readyz wants a live worker and scheduler: on a first install start them now.
  local fresh=""
  for name in worker scheduler; do
    if { [ "$LAUNCHER" != systemd ] || process_known "$name"; } && ! process_running "$name"
    then
      start_process "$name" "$release"
      fresh+=" $name"
    fi
  done
  for port in $new; do
    # A process left on an idle port (an earlier drain that has not finished) must go first.
    if process_running "web@$port"; then
      stop_process "web@$port"
      wait_stopped "web@$port" "$DRAIN_WAIT" || die "port $port is still busy."
    fi
    start_process "web@$port" "$release"
  done
  for port in $new; do
    if ! wait_ready "$port"; then
      abort_switch "port $port did not answer /readyz within ${READY_TIMEOUT}s" "$new" \
        "$was_current"
      return 1
    fi
    echo "port $port ready"
  done
  if [ -n "${GATE_CMD:-}" ] && ! NEW_PORTS=$new bash -c "$GATE_CMD"; then
    abort_switch "GATE_CMD failed" "$new" "$was_current"
    return 1
  fi

  step "Proxy to ports $new"
  point_proxy_at "$new"
  if [ -n "$was_current" ] && [ "$was_current" != "$release" ]; then
    ln -sfn "$was_current" "$ROOT/previous.new" && mv -T "$ROOT/previous.new" "$ROOT/previous"
  fi

  step "Draining ports $old"
  local drain_started=$SECONDS
  for port in $old; do
    if process_running "web@$port"; then stop_process "web@$port"; fi
  done

  for name in worker scheduler; do
    # Under systemd only when the unit is installed; plain processes are always started.
    case " $fresh " in *" $name "*) continue ;; esac
    if [ "$LAUNCHER" != systemd ] || process_known "$name"; then
      step "Restarting the $name"
      if process_running "$name"; then
        stop_process "$name"
        wait_stopped "$name" 330 || die "the $name did not stop within 330s."
      fi
      start_process "$name" "$release"
    fi
  done

  if [ "$DRAIN_WAIT" -gt 0 ]; then
    for port in $old; do
      wait_stopped "web@$port" "$DRAIN_WAIT" ||
        echo "port $port still draining after ${DRAIN_WAIT}s" >&2
    done
    echo "old web processes drained in $((SECONDS - drain_started))s"
  fi
  step "Running $(basename "$release") on ports $new"
}

abort_switch() {
  local why=$1 new=$2 was_current=$3 port
  echo "$why; keeping the old release." >&2
  for port in $new; do stop_process "web@$port"; done
  if [ -n "$was_current" ]; then
    ln -sfn "$was_current" "$ROOT/current.new" && mv -T "$ROOT/current.new" "$ROOT/current"
  fi
}

wait_stopped() {
  local name=$1 limit=$2 waited=0
  while process_running "$name"; do
    [ "$waited" -lt "$limit" ] || return 1
    sleep 1
    waited=$((waited + 1))
  done
}
