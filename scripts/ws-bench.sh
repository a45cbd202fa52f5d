#!/usr/bin/env bash
# WebSocket fan-out benchmark (docs/benchmarks.md, "WebSocket fan-out"): one release host on loopback
# (SQLite + in-process services, the real plugins and the probe fixture), N idle authenticated sockets
# held by several `wsload hold` processes, the host's RSS before and after, then one global event
# (the probe's `shout`) and its delivery latency to every socket.
#
#   scripts/ws-bench.sh [CONNECTIONS=15000] [PROCESSES=4]
#
# With BACKEND=postgres the host runs as in production instead: a fresh PostgreSQL database on
# 127.0.0.1:5432 (dropped on exit) and Redis on 127.0.0.1:6379 under a key prefix of its own, so
# presence and the event bus go through Redis.
#
# With VIA_NGINX=1 the sockets (and the registrations and the shout) go through nginx, as in production:
# deploy/nginx.conf rendered by deploy/render-nginx-conf.sh with the one host as its upstream, on
# PORT + 1, with its temporary folders in the work folder (as host/tests/integration/nginx.rs runs it); nginx's
# RSS is read beside the host's. Each proxied socket is two of nginx's descriptors, so nginx needs an
# open-file limit of twice CONNECTIONS plus a few hundred: it raises its own (worker_rlimit_nofile)
# where it may, else the shell's limit applies.
#
# Needs the plugins built (`cargo xtask build-plugins`) and an open-file limit of at least
# CONNECTIONS + a few hundred (it raises the soft limit itself). Everything runs on 127.0.0.1 and is
# cleaned up on exit; it gives up after 10 minutes.
set -euo pipefail

CONNECTIONS=${1:-15000}
PROCESSES=${2:-4}
USERS=${USERS:-100}
PORT=${PORT:-3917}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/cauldron-target-host}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

ulimit -n 20000
cargo build --release -q -p cauldron-host --bin cauldron --bin wsload
BIN=$CARGO_TARGET_DIR/release

WORK=$(mktemp -d /var/tmp/cauldron-ws-bench.XXXXXX)
PIDS=()
DB_NAME=""
NGINX_PID=""
cleanup() {
  for pid in "${PIDS[@]}" $NGINX_PID; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$DB_NAME" ]; then
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB_NAME" || true
    redis-cli --scan --pattern "wsbench$$:*" | xargs -r redis-cli del >/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

BACKEND_ENV=(DATABASE_URL="sqlite://$WORK/bench.db")
if [ "${BACKEND:-sqlite}" = postgres ]; then
  DB_NAME="cauldron_ws_bench_$$"
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB_NAME"
  BACKEND_ENV=(DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB_NAME"
    REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX="wsbench$$:")
fi

mkdir -p "$WORK/plugins"
cp -r "$CARGO_TARGET_DIR/plugins/." "$WORK/plugins/"
cp "$CARGO_TARGET_DIR/fixtures/probe.wasm" "$WORK/plugins/"

(cd "$WORK" && exec env "${BACKEND_ENV[@]}" JWT_SECRET=ws-bench-secret-0123456789abcdef0123456789 \
  PLUGINS_DIR="$WORK/plugins" WEB_DIR="$WORK/no-web" BIND_ADDR=127.0.0.1 PORT=$PORT LOG_LEVEL=warn \
  RATE_LIMIT_ACTION_BURST=1000 RATE_LIMIT_REGISTER_BURST=1000000 "$BIN/cauldron") &
HOST=$!
PIDS+=("$HOST")
URL=http://127.0.0.1:$PORT
for _ in $(seq 200); do curl -fs "$URL/readyz" >/dev/null && break; sleep 0.1; done
curl -fs "$URL/readyz" >/dev/null

TARGET=$URL
if [ "${VIA_NGINX:-0}" = 1 ]; then
  NPORT=$((PORT + 1))
  NG=$WORK/nginx
  mkdir -p "$NG" "$WORK/web"
  "$ROOT/deploy/render-nginx-conf.sh" "127.0.0.1:$NPORT" "$WORK/web" "127.0.0.1:$PORT" \
    | sed "s#^http {\$#http {\n    client_body_temp_path $NG/body; proxy_temp_path $NG/proxy; fastcgi_temp_path $NG/fastcgi; uwsgi_temp_path $NG/uwsgi; scgi_temp_path $NG/scgi;#" \
    > "$NG/nginx.conf"
  nginx -p "$NG" -e stderr -c "$NG/nginx.conf" -g "daemon off; pid $NG/nginx.pid;" >/dev/null 2>"$NG/error.log" &
  NGINX_PID=$!
  TARGET=http://127.0.0.1:$NPORT
  for _ in $(seq 100); do curl -fs "$TARGET/nginx-healthz" >/dev/null && break; sleep 0.1; done
  curl -fs "$TARGET/nginx-healthz" >/dev/null
fi
# nginx's master and workers, in KiB (0 without nginx).
nginx_rss() {
  [ -n "$NGINX_PID" ] || { echo 0; return; }
  for p in $NGINX_PID $(pgrep -P "$NGINX_PID"); do awk '/VmRSS/ {print $2}' "/proc/$p/status"; done \
    | awk '{s += $1} END {print s}'
}

"$BIN/wsload" users --url "$TARGET" --count "$USERS" > "$WORK/tokens"
rss() { awk '/VmRSS/ {print $2}' "/proc/$HOST/status"; }
sleep 1
BEFORE=$(rss)
NGINX_BEFORE=$(nginx_rss)

# The hold processes start one after another; the host's RSS is read after each is ready (and the
# sockets have settled: first pings, presence), so the per-socket cost is also the slope between the
# first and the last reading, free of start-up memory the allocator may reuse.
PER=$((CONNECTIONS / PROCESSES))
READINGS=()
for i in $(seq "$PROCESSES"); do
  timeout 600 "$BIN/wsload" hold --url "$TARGET" --tokens "$WORK/tokens" --connections "$PER" \
    --out "$WORK/lat.$i" > "$WORK/hold.$i" 2> "$WORK/hold.$i.err" &
  PIDS+=("$!")
  until grep -q '^ready' "$WORK/hold.$i" 2>/dev/null; do sleep 0.5; done
  sleep 25
  READINGS+=("$(rss)")
done
OPEN=$(cat "$WORK"/hold.* | awk '/^ready/ {ok += $2; failed += $4} END {print ok, failed}')
AFTER=${READINGS[-1]}
NGINX_AFTER=$(nginx_rss)
FIRST=${READINGS[0]}
GAUGE=$(curl -fs "$URL/metrics" | awk '$1 == "cauldron_ws_connections" {print $2}')

TOKEN=$(head -1 "$WORK/tokens")
"$BIN/wsload" shout --url "$TARGET" --token "$TOKEN"
for pid in "${PIDS[@]:1}"; do wait "$pid" || true; done
sort -n "$WORK"/lat.* > "$WORK/all"
N=$(wc -l < "$WORK/all")
pct() { awk -v p="$1" -v n="$N" 'NR == int((n - 1) * p) + 1 {printf "%.1f", $1 / 1000}' "$WORK/all"; }

echo "connections opened/failed: $OPEN (gauge $GAUGE)"
echo "host RSS (KiB): before ${BEFORE}, after each ${PER} sockets: ${READINGS[*]}"
echo "per socket: $(( (AFTER - BEFORE) * 1024 / ${OPEN%% *} )) bytes overall, $(( (AFTER - FIRST) * 1024 / (PER * (PROCESSES - 1)) )) bytes from the first to the last reading"
if [ -n "$NGINX_PID" ]; then
  echo "nginx RSS (KiB): before ${NGINX_BEFORE}, after ${NGINX_AFTER}: $(( (NGINX_AFTER - NGINX_BEFORE) * 1024 / ${OPEN%% *} )) bytes per socket"
  grep -E '\[(alert|crit|emerg)\]' "$WORK/nginx/error.log" | sort | uniq -c | head -5 || true
fi
echo "event delivered to $N sockets: p50 $(pct 0.5) ms, p99 $(pct 0.99) ms, max $(pct 1) ms"
cat "$WORK"/hold.*.err | sort | uniq -c | head -5
