#!/usr/bin/env bash
# The replay benchmark of docs/benchmarks.md: how fast `cauldron replay` re-runs logged actions,
# against the runtime's own sandboxed call rate on the same calls, in the same run, with release
# binaries.
#
# 1. Takes `cauldron`, `load` and the plugins from CAULDRON_BIN, LOAD_BIN and PLUGINS_DIR when set,
#    else builds them (release) into $CARGO_TARGET_DIR (default /var/tmp/cauldron-target).
# 2. Starts the host on a fresh database: a scratch SQLite file, or with PG_URL (e.g.
#    postgres://postgres@127.0.0.1:5432/postgres) a scratch PostgreSQL database it creates and drops.
# 3. Plays the game with the `load` tool for DURATION seconds (default 20): PLAYERS players
#    (default 64) gather, meditate and explore, so every logged action is an applied one.
# 4. Stops the host and runs `cauldron replay --plugin cultivation --candidate PLUGINS_DIR --measure
#    --json` on that database: every logged cultivation action against the bundle that ran it, then
#    a sample of up to 10,000 of the same calls straight on the runtime with the same workers. Prints the
#    report's counts and rates. With PERF=1 the replay runs under `perf record -g` (PERF=all: the
#    whole machine, so PostgreSQL's backend shows too; into PERF_DATA, default a temporary file)
#    and the top of `perf report` is printed, by process and library, then by symbol (build with
#    `--profile profiling` for symbols, see Cargo.toml).
#
#   scripts/replay-bench.sh
#   PG_URL=postgres://postgres@127.0.0.1:5432/postgres scripts/replay-bench.sh
#   WORKERS=2 PERF=1 CAULDRON_BIN=/path/profiling/cauldron scripts/replay-bench.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/cauldron-target}
DURATION=${DURATION:-20}
PLAYERS=${PLAYERS:-64}
cd "$ROOT"

if [[ -z ${PLUGINS_DIR:-} ]]; then
    cargo xtask build-plugins
    PLUGINS_DIR=$CARGO_TARGET_DIR/plugins
fi
if [[ -z ${CAULDRON_BIN:-} || -z ${LOAD_BIN:-} ]]; then
    cargo build --release -p cauldron-host --bin cauldron --bin load
    CAULDRON_BIN=${CAULDRON_BIN:-$CARGO_TARGET_DIR/release/cauldron}
    LOAD_BIN=${LOAD_BIN:-$CARGO_TARGET_DIR/release/load}
fi

WORK=$(mktemp -d /tmp/cauldron-replay-bench.XXXXXX)
HOST_PID=
SCRATCH_DB=
cleanup() {
    [[ -n $HOST_PID ]] && kill "$HOST_PID" 2>/dev/null && wait "$HOST_PID" 2>/dev/null
    if [[ -n $SCRATCH_DB ]]; then
        psql -q "$PG_URL" -c "drop database if exists $SCRATCH_DB" || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -n ${PG_URL:-} ]]; then
    SCRATCH_DB=cauldron_replaybench_$RANDOM$RANDOM
    psql -q "$PG_URL" -c "create database $SCRATCH_DB"
    DATABASE_URL=${PG_URL%/*}/$SCRATCH_DB
else
    DATABASE_URL=sqlite://$WORK/replay.db
fi
export DATABASE_URL PLUGINS_DIR
export MODULE_CACHE_DIR=$WORK/module-cache
export RATE_LIMIT_ACTION_BURST=1000000 RATE_LIMIT_ACTION_PER_SEC=1000000
export RATE_LIMIT_REGISTER_BURST=1000000 RATE_LIMIT_REGISTER_PER_MIN=1000000
export LOG_LEVEL=${LOG_LEVEL:-warn}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export PORT BIND_ADDR=127.0.0.1

"$CAULDRON_BIN" >"$WORK/host.log" 2>&1 &
HOST_PID=$!
for _ in $(seq 1 600); do
    curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    kill -0 "$HOST_PID" 2>/dev/null || { cat "$WORK/host.log"; exit 1; }
    sleep 0.2
done

echo "replay-bench: playing for ${DURATION} s with $PLAYERS players" >&2
"$LOAD_BIN" --url "http://127.0.0.1:$PORT" --players "$PLAYERS" --concurrency 8 \
    --duration "$DURATION" \
    --mix "cultivation/gather=4,cultivation/meditate=1,cultivation/explore=1" >&2

kill "$HOST_PID"
wait "$HOST_PID" 2>/dev/null || true
HOST_PID=

REPLAY=("$CAULDRON_BIN" replay --plugin cultivation --candidate "$PLUGINS_DIR" --measure --json)
[[ -n ${WORKERS:-} ]] && REPLAY+=(--workers "$WORKERS")
if [[ ${PERF:-0} != 0 ]]; then
    PERF_DATA=${PERF_DATA:-$WORK/perf.data}
    scope=()
    [[ $PERF == all ]] && scope=(-a)
    perf record "${scope[@]}" -g -o "$PERF_DATA" -- "${REPLAY[@]}" >"$WORK/report.json"
    perf report -i "$PERF_DATA" --no-children -g none --sort comm,dso --percent-limit 0.7 --stdio \
        2>/dev/null | grep -v -e '^$' -e '^#' | head -20
    perf report -i "$PERF_DATA" --no-children -g none --percent-limit 0.7 --stdio 2>/dev/null |
        grep -v -e '^$' -e '^#' | head -40
else
    "${REPLAY[@]}" >"$WORK/report.json"
fi
python3 - "$WORK/report.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["throughput"] or {}
print(f"replayed {r['replayed']}: identical {r['identical']}, diverged {r['diverged']['total']}, "
      f"faulted {r['faulted']}, skipped {r['skipped']}")
print(f"replay {t.get('replay_calls_per_sec', 0):,.0f} actions/s; runtime alone "
      f"{t.get('runtime_calls_per_sec', 0):,.0f} calls/s on {t.get('calls', 0)} of the same calls; "
      f"ratio {t.get('ratio', 0):.2f}")
EOF
