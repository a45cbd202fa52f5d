#!/usr/bin/env bash
# Fuzz the HTTP API against its own OpenAPI document with schemathesis.
#
# Installs a pinned schemathesis into a venv under /var/tmp if missing; takes the `cauldron` binary
# and the plugins from CAULDRON_BIN and PLUGINS_DIR when set, else builds them into
# $CARGO_TARGET_DIR (default /var/tmp/cauldron-target); starts the host on a fresh SQLite database on
# a free port; registers a user for a bearer token; extends the served /api/openapi.json with one
# operation per plugin action (its params from the catalog as the body schema); runs every
# schemathesis check (`--checks all`) over every phase (examples, coverage, fuzzing, and stateful,
# which follows the document's links); then the admin API likewise with an admin token; and stops
# the host. Fails when schemathesis does, or when the
# host logged an error.
#
#   scripts/schemathesis.sh                       # default budget
#   MAX_EXAMPLES=200 scripts/schemathesis.sh      # more cases per operation
#   MAX_TIME=600 scripts/schemathesis.sh          # fuzz and walk links until 600 s are spent
#   SCHEMATHESIS_ARGS="--seed 1" scripts/schemathesis.sh
#   CAULDRON_BIN=target/debug/cauldron PLUGINS_DIR=target/plugins scripts/schemathesis.sh
#
# The host's log is kept in $REPORT_DIR/host.log and schemathesis's JUnit report beside it.
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5
VENV=${SCHEMATHESIS_VENV:-/var/tmp/cauldron-schemathesis-venv}
MAX_EXAMPLES=${MAX_EXAMPLES:-50}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/cauldron-target}
REPORT_DIR=${REPORT_DIR:-$CARGO_TARGET_DIR/schemathesis}

# 1. schemathesis, pinned, in its own venv.
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

# 2. The plugins and the host: the ones given in CAULDRON_BIN and PLUGINS_DIR, or built into
# $CARGO_TARGET_DIR; copied so a concurrent build cannot swap them under the run.
cd "$ROOT"
if [[ -z ${PLUGINS_DIR:-} ]]; then
    cargo xtask build-plugins
    PLUGINS_DIR=$CARGO_TARGET_DIR/plugins
fi
if [[ -z ${CAULDRON_BIN:-} ]]; then
    cargo build --quiet -p cauldron-host --bin cauldron
    CAULDRON_BIN=$CARGO_TARGET_DIR/debug/cauldron
fi
WORK=$(mktemp -d /var/tmp/cauldron-schemathesis.XXXXXX)
cp "$CAULDRON_BIN" "$WORK/cauldron"
cp -r "$PLUGINS_DIR" "$WORK/plugins"
mkdir -p "$REPORT_DIR"
REPORT_DIR=$(cd "$REPORT_DIR" && pwd)

HOST_PID=
cleanup() {
    if [[ -n $HOST_PID ]] && kill -0 "$HOST_PID" 2>/dev/null; then
        kill "$HOST_PID"
        wait "$HOST_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

ADMIN_TOKEN="schemathesis-admin-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"

# 3. The host on SQLite and in-process services. Rate limits are raised so the fuzzer reaches the
# handlers instead of collecting 429s (which are documented, so they would pass anyway).
env -i PATH="$PATH" HOME="${HOME:-/root}" \
    DATABASE_URL="sqlite://$WORK/fuzz.db" \
    PLUGINS_DIR="$WORK/plugins" \
    MODULE_CACHE_DIR="$REPORT_DIR/module-cache" \
    WEB_DIR="$WORK/no-web" \
    JWT_SECRET="schemathesis-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
    ADMIN_TOKEN="$ADMIN_TOKEN" \
    BIND_ADDR=127.0.0.1 PORT="$PORT" \
    RATE_LIMIT_ACTION_BURST=1000000 RATE_LIMIT_ACTION_PER_SEC=1000000 \
    RATE_LIMIT_QUERY_BURST=1000000 RATE_LIMIT_QUERY_PER_SEC=1000000 \
    RATE_LIMIT_LOGIN_BURST=1000000 RATE_LIMIT_LOGIN_PER_MIN=1000000 \
    RATE_LIMIT_LOGIN_ADDR_BURST=1000000 RATE_LIMIT_LOGIN_ADDR_PER_MIN=1000000 \
    RATE_LIMIT_REGISTER_BURST=1000000 RATE_LIMIT_REGISTER_PER_MIN=1000000 \
    LOG_LEVEL=warn LOG_FORMAT=json \
    "$WORK/cauldron" >"$REPORT_DIR/host.log" 2>&1 &
HOST_PID=$!

# Up to two minutes: with a cold module cache the host compiles every plugin first, which takes a
# while on a small machine that is busy with other builds.
for _ in $(seq 1 600); do
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

# 5. The document under test: the served one, plus one operation per plugin action
# (`/api/v1/actions/cultivation/meditate`, ...) whose body schema is that action's params as its
# manifest declares them (types, required keys, allowed values), so the fuzzed bodies reach the
# plugins' own checks instead of the generic route's "unknown plugin" 404s.
curl -fsS "$BASE/api/openapi.json" >"$WORK/served.json"
curl -fsS "$BASE/api/v1/catalog" >"$WORK/catalog.json"
python3 - "$WORK/served.json" "$WORK/catalog.json" >"$WORK/openapi.json" <<'PY'
import copy, json, sys

doc = json.load(open(sys.argv[1]))
catalog = json.load(open(sys.argv[2]))
generic = doc["paths"]["/api/v1/actions/{plugin}/{action}"]["post"]
types = {"integer": "integer", "number": "number", "string": "string", "bool": "boolean", "entity": "string", "player": "integer"}
for entry in catalog:
    plugin = entry["manifest"]["name"]
    for action in entry["manifest"]["actions"]:
        op = copy.deepcopy(generic)
        op["operationId"] = f"runAction_{plugin}_{action['name']}"
        op["parameters"] = [p for p in op.get("parameters", []) if p["in"] != "path"]
        props, required = {}, []
        for param in action["params"]:
            schema = {"type": types[param["type"]]}
            if param["of"] and param["type"] in ("string", "integer"):
                values = param["of"].split(",")
                schema["enum"] = [int(v) for v in values] if param["type"] == "integer" else values
            if param["description"]:
                schema["description"] = param["description"]
            if param["required"]:
                required.append(param["name"])
            else:
                # An optional param may also be sent as null: the SDK reads it as absent.
                schema = {"anyOf": [schema, {"type": "null"}]}
            props[param["name"]] = schema
        body = {"type": "object", "properties": props}
        if required:
            body["required"] = required
        # Like the generic route: an empty body or `null` means no params.
        body = {"oneOf": [{"type": "null"}, body]}
        op["requestBody"] = {"required": bool(required), "content": {"application/json": {"schema": body}}}
        for response in op["responses"].values():
            links = response.get("links", {})
            if "again" in links:
                links["again"] = {"operationId": op["operationId"], "description": "The same action again"}
        doc["paths"][f"/api/v1/actions/{plugin}/{action['name']}"] = {"post": op}
json.dump(doc, sys.stdout)
PY

# The admin upload's body is `application/wasm` or a plugin bundle: sent as raw bytes, like
# octet-stream.
cat >"$WORK/cauldron_hooks.py" <<'PY'
import schemathesis

schemathesis.serializer.alias("application/wasm", "application/octet-stream")
schemathesis.serializer.alias("application/vnd.cauldron.bundle", "application/octet-stream")
PY

# Per-operation settings. On the per-action operations a schema-valid request can still be refused
# with a documented 4xx that no schema can foresee: 422 when the game's rules say no (not enough
# spirit stones, an Idempotency-Key already used for another request), 400 `bad_params` when a
# value is of the declared type but out of the plugin's range (a negative count), 404 for an
# entity id the player does not own. positive_data_acceptance accepts those there and nowhere else.
# Likewise an upload's body is any bytes to the schema, but only a module that compiles and passes
# the ABI and manifest checks is taken: anything else is the documented 422 `plugin_refused`, or,
# sent as a bundle, the documented 400 `bad_bundle` when the bytes are not a bundle's encoding.
cat >"$WORK/schemathesis.toml" <<'TOML'
[[operations]]
include-path-regex = "^/api/v1/actions/[^{]"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422", "429"]

[[operations]]
include-path = "/api/v1/admin/plugins/{name}"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422", "429"]
TOML

# 6. The run: every check, every phase (examples, coverage, fuzzing, and stateful sequences
# that follow the document's links: register -> login -> player, catalog -> action -> player).
# Logout is left out: it would revoke the token every other operation uses.
status=0
time_args=()
if [[ -n ${MAX_TIME:-} ]]; then
    time_args=(--max-time "$MAX_TIME")
fi
# Run from the scratch directory: schemathesis keeps a cache in `.schemathesis` under its working
# directory, which must not land in the checkout.
cd "$WORK"
# shellcheck disable=SC2086 # SCHEMATHESIS_ARGS is a list of words on purpose
PYTHONPATH="$WORK" SCHEMATHESIS_HOOKS=cauldron_hooks \
    "$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "$WORK/openapi.json" \
    --url "$BASE" \
    --header "Authorization: Bearer $TOKEN" \
    --checks all \
    --phases examples,coverage,fuzzing,stateful \
    --exclude-path /api/v1/auth/logout \
    --max-examples "$MAX_EXAMPLES" "${time_args[@]}" \
    --report junit --report-dir "$REPORT_DIR" \
    --no-color \
    ${SCHEMATHESIS_ARGS:-} || status=$?

# 7. The admin API with the admin token (the run above reached it only as a player: 403s). Last,
# because it unloads plugins: the stateful phase feeds the names GET /admin/plugins lists to DELETE.
# shellcheck disable=SC2086
PYTHONPATH="$WORK" SCHEMATHESIS_HOOKS=cauldron_hooks \
    "$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "$WORK/openapi.json" \
    --url "$BASE" \
    --header "Authorization: Bearer $ADMIN_TOKEN" \
    --checks all \
    --phases examples,coverage,fuzzing,stateful \
    --include-path-regex '^/api/v1/admin/' \
    --max-examples "$MAX_EXAMPLES" "${time_args[@]}" \
    --report junit --report-junit-path "$REPORT_DIR/junit-admin.xml" \
    --no-color \
    ${SCHEMATHESIS_ARGS:-} || status=$?

if grep -q '"level":"ERROR"' "$REPORT_DIR/host.log"; then
    echo "the host logged errors during the run (see $REPORT_DIR/host.log):" >&2
    grep '"level":"ERROR"' "$REPORT_DIR/host.log" | head -20 >&2
    [[ $status -ne 0 ]] || status=1
fi
exit "$status"
