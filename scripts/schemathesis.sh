#!/usr/bin/env bash
# Fuzz the HTTP API against its own OpenAPI document with schemathesis.
#
# Installs a pinned schemathesis into a venv under /var/tmp if missing, builds the plugins and the
# `cauldron` binary, starts it on a fresh SQLite database with the built plugins on a free port,
# registers a user for a bearer token, runs `schemathesis run` against /api/openapi.json with two
# checks — no 5xx (not_a_server_error) and every response matches its documented schema
# (response_schema_conformance) — and stops the host. Exit status: schemathesis's.
#
#   scripts/schemathesis.sh                       # default budget
#   MAX_EXAMPLES=200 scripts/schemathesis.sh      # more cases per operation
#   SCHEMATHESIS_ARGS="--seed 1" scripts/schemathesis.sh
#
# The host's log is kept in $REPORT_DIR/host.log and schemathesis's JUnit report beside it.
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5
VENV=${SCHEMATHESIS_VENV:-/var/tmp/cauldron-schemathesis-venv}
MAX_EXAMPLES=${MAX_EXAMPLES:-50}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/cauldron-target-host}
REPORT_DIR=${REPORT_DIR:-$CARGO_TARGET_DIR/schemathesis}

# 1. schemathesis, pinned, in its own venv.
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

# 2. The plugins and the host, copied so a concurrent build cannot swap them under the run.
cd "$ROOT"
cargo xtask build-plugins
cargo build --quiet -p cauldron-host --bin cauldron
WORK=$(mktemp -d /var/tmp/cauldron-schemathesis.XXXXXX)
cp "$CARGO_TARGET_DIR/debug/cauldron" "$WORK/cauldron"
cp -r "$CARGO_TARGET_DIR/plugins" "$WORK/plugins"
mkdir -p "$REPORT_DIR"

HOST_PID=
cleanup() {
    if [[ -n $HOST_PID ]] && kill -0 "$HOST_PID" 2>/dev/null; then
        kill "$HOST_PID"
        wait "$HOST_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"

# 3. The host on SQLite and in-process services. Rate limits are raised so the fuzzer reaches the
# handlers instead of collecting 429s (which are documented, so they would pass anyway).
env -i PATH="$PATH" HOME="${HOME:-/root}" \
    DATABASE_URL="sqlite://$WORK/fuzz.db" \
    PLUGINS_DIR="$WORK/plugins" \
    MODULE_CACHE_DIR="$WORK/module-cache" \
    WEB_DIR="$WORK/no-web" \
    JWT_SECRET="schemathesis-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
    BIND_ADDR=127.0.0.1 PORT="$PORT" \
    RATE_LIMIT_ACTION_BURST=1000000 RATE_LIMIT_ACTION_PER_SEC=1000000 \
    RATE_LIMIT_LOGIN_BURST=1000000 RATE_LIMIT_LOGIN_PER_MIN=1000000 \
    RATE_LIMIT_LOGIN_ADDR_BURST=1000000 RATE_LIMIT_LOGIN_ADDR_PER_MIN=1000000 \
    RATE_LIMIT_REGISTER_BURST=1000000 RATE_LIMIT_REGISTER_PER_MIN=1000000 \
    LOG_LEVEL=warn LOG_FORMAT=json \
    "$WORK/cauldron" >"$REPORT_DIR/host.log" 2>&1 &
HOST_PID=$!

for _ in $(seq 1 150); do
    if curl -fsS "$BASE/readyz" >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "$HOST_PID" 2>/dev/null; then
        echo "the host exited during start-up:" >&2
        cat "$REPORT_DIR/host.log" >&2
        exit 1
    fi
    sleep 0.2
done
curl -fsS "$BASE/readyz" >/dev/null

# 4. A player and its token.
USERNAME="fuzz_$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
TOKEN=$(curl -fsS -X POST "$BASE/api/v1/auth/register" \
    -H 'content-type: application/json' \
    -d "{\"username\":\"$USERNAME\",\"password\":\"schemathesis-password\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

# 5. The run. Logout is left out: it would revoke the token every other operation uses.
status=0
# shellcheck disable=SC2086 # SCHEMATHESIS_ARGS is a list of words on purpose
"$VENV/bin/schemathesis" run "$BASE/api/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,response_schema_conformance \
    --exclude-path /api/v1/auth/logout \
    --max-examples "$MAX_EXAMPLES" \
    --report junit --report-dir "$REPORT_DIR" \
    ${SCHEMATHESIS_ARGS:-} || status=$?

# 6. Every plugin action, with the path fixed to a real plugin and action from the catalog (the run
# above mostly reaches "unknown plugin" 404s there), so the fuzzed bodies reach the plugins' params.
ACTION_EXAMPLES=${ACTION_EXAMPLES:-15}
curl -fsS "$BASE/api/v1/catalog" | python3 -c '
import json, sys
for entry in json.load(sys.stdin):
    m = entry["manifest"]
    for a in m["actions"]:
        print(m["name"], a["name"])
' >"$WORK/actions.txt"
while read -r plugin action; do
    cat >"$WORK/schemathesis.toml" <<TOML
[[operations]]
include-path = "/api/v1/actions/{plugin}/{action}"
parameters = { "path.plugin" = "$plugin", "path.action" = "$action" }
TOML
    echo "== $plugin/$action"
    # shellcheck disable=SC2086
    "$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "$BASE/api/openapi.json" \
        --header "Authorization: Bearer $TOKEN" \
        --checks not_a_server_error,response_schema_conformance \
        --include-path "/api/v1/actions/{plugin}/{action}" \
        --max-examples "$ACTION_EXAMPLES" --phases examples,coverage,fuzzing \
        --report junit --report-junit-path "$REPORT_DIR/junit-$plugin-$action.xml" \
        ${SCHEMATHESIS_ARGS:-} >"$WORK/run.log" 2>&1 || { status=1; cat "$WORK/run.log"; }
    grep -E "generated|failures" "$WORK/run.log" || true
done <"$WORK/actions.txt"

if grep -q '"level":"ERROR"' "$REPORT_DIR/host.log"; then
    echo "the host logged errors during the run (see $REPORT_DIR/host.log):" >&2
    grep '"level":"ERROR"' "$REPORT_DIR/host.log" | head -20 >&2
    [[ $status -ne 0 ]] || status=1
fi
exit "$status"
