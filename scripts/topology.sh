#!/usr/bin/env bash
# The multi-process topology of docker-compose.yml on one machine, without
# Docker: a private Redis, 2 matching and 2 signalling processes behind a small
# TCP balancer, the web role, and coturn when it is installed.
#
#   npm run build -w @dyad/protocol -w @dyad/server   (and -w @dyad/web for the client)
#   scripts/topology.sh          # Ctrl-C stops everything
#
# Then open http://127.0.0.1:8080 in two tabs. Settings (environment):
#   HOST (127.0.0.1), WEB_PORT (8080), MATCHING_PORT (8000), SIGNALLING_PORT (8001):
#     what clients use; the processes behind the balancer take the ports 100 and 110 above.
#   REDIS_PORT (6390), TURN_PORT (3478), TURN=0 to leave coturn out,
#   LOG_LEVEL (info). Logs go to a temporary folder, printed at start.
set -euo pipefail
cd "$(dirname "$0")/.."

HOST="${HOST:-127.0.0.1}"
WEB_PORT="${WEB_PORT:-8080}"
MATCHING_PORT="${MATCHING_PORT:-8000}"
SIGNALLING_PORT="${SIGNALLING_PORT:-8001}"
REDIS_PORT="${REDIS_PORT:-6390}"
TURN_PORT="${TURN_PORT:-3478}"
LOG_LEVEL="${LOG_LEVEL:-info}"
ENTRY=packages/server/dist/main.js

command -v redis-server >/dev/null || { echo "topology: redis-server is required (apt-get install redis-server)" >&2; exit 1; }
[ -f "$ENTRY" ] || { echo "topology: $ENTRY is missing; run: npm run build" >&2; exit 1; }

DIR="$(mktemp -d "${TMPDIR:-/tmp}/dyad-topology.XXXXXX")"
PIDS=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "topology: stopping"
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "topology: stopped (logs kept in $DIR)"
}
trap stop INT TERM EXIT

# Wait until FILE contains TEXT (or the process PID died).
wait_for() {
  local file=$1 text=$2 pid=$3
  for _ in $(seq 1 150); do
    grep -q "$text" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "topology: $(basename "$file" .log) exited:" >&2; tail -20 "$file" >&2; exit 1; }
    sleep 0.1
  done
  echo "topology: $(basename "$file" .log) did not start; see $file" >&2
  exit 1
}

secret() { node -e 'process.stdout.write(require("node:crypto").randomBytes(24).toString("base64url"))'; }

# Redis: nothing on disk, as Dyad keeps nothing worth keeping across a restart.
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" >"$DIR/redis.log" 2>&1 &
PIDS+=($!)
wait_for "$DIR/redis.log" "Ready to accept connections" "$!"

export REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export REDIS_PREFIX="${REDIS_PREFIX:-dyad:}"
# Every process must hash client addresses alike (bans and reports count per address).
export ADDRESS_HASH_KEY="${ADDRESS_HASH_KEY:-$(secret)}"
export HOST LOG_LEVEL

if [ "${TURN:-1}" != 0 ] && command -v turnserver >/dev/null; then
  TURN_SECRET="${TURN_SECRET:-$(secret)}"
  turnserver -n --no-cli --log-file=stdout --simple-log --pidfile="$DIR/turn.pid" --userdb="$DIR/turndb" \
    --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port="$TURN_PORT" --min-port=49152 --max-port=49252 \
    --use-auth-secret --static-auth-secret="$TURN_SECRET" --realm=dyad --no-tls --no-dtls --fingerprint \
    --allow-loopback-peers >"$DIR/coturn.log" 2>&1 &
  PIDS+=($!)
  export TURN_URLS="turn:$HOST:$TURN_PORT?transport=udp,turn:$HOST:$TURN_PORT?transport=tcp" TURN_SECRET
  echo "topology: coturn on $HOST:$TURN_PORT (use-auth-secret)"
fi

start() {
  local name=$1 text=$2
  shift 2
  env "$@" node "$ENTRY" >"$DIR/$name.log" 2>&1 &
  PIDS+=($!)
  wait_for "$DIR/$name.log" "$text" "$!"
  echo "topology: $name up"
}

M1=$((MATCHING_PORT + 100)) M2=$((MATCHING_PORT + 110))
S1=$((SIGNALLING_PORT + 100)) S2=$((SIGNALLING_PORT + 110))
start matching-1 "matching listening" ROLES=matching MATCHING_PORT=$M1
start matching-2 "matching listening" ROLES=matching MATCHING_PORT=$M2
start signalling-1 "signalling listening" ROLES=signalling SIGNALLING_PORT=$S1
start signalling-2 "signalling listening" ROLES=signalling SIGNALLING_PORT=$S2
# The web role tells browsers to use the balancer's ports.
start web "web listening" ROLES=web WEB_PORT="$WEB_PORT" MATCHING_PORT="$MATCHING_PORT" SIGNALLING_PORT="$SIGNALLING_PORT"

node scripts/balancer.mjs \
  "$HOST:$MATCHING_PORT=127.0.0.1:$M1,127.0.0.1:$M2" \
  "$HOST:$SIGNALLING_PORT=127.0.0.1:$S1,127.0.0.1:$S2" >"$DIR/balancer.log" 2>&1 &
PIDS+=($!)
wait_for "$DIR/balancer.log" "balancer $HOST:$SIGNALLING_PORT" "$!"

cat <<EOF

Dyad is up: open http://$HOST:$WEB_PORT in two tabs.
  matching   http://$HOST:$MATCHING_PORT  -> :$M1, :$M2
  signalling http://$HOST:$SIGNALLING_PORT  -> :$S1, :$S2
  redis      $REDIS_URL (prefix $REDIS_PREFIX)
  logs       $DIR
Try: kill -9 one matching process, or restart Redis; Ctrl-C stops everything.
EOF
wait -n "${PIDS[@]}" || true
echo "topology: a process exited; see $DIR" >&2
