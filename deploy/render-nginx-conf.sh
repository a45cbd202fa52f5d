#!/usr/bin/env bash
# Print deploy/nginx.conf with its three marked places filled in, for running nginx outside Docker
# (the nginx integration test, `deploy/lint.sh`'s `nginx -t`).
#
#   deploy/render-nginx-conf.sh LISTEN ROOT UPSTREAM_SERVER...
#   deploy/render-nginx-conf.sh 127.0.0.1:18080 "$PWD/web" 127.0.0.1:3001 127.0.0.1:3002 > nginx.conf
#
# LISTEN is what follows `listen` (a port or address:port), ROOT the web client's folder, and each
# UPSTREAM_SERVER one host (address:port), put in both upstreams (cauldron_hosts for the players,
# cauldron_admin for /api/v1/admin/). Fails if a marker is missing or appears twice.
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "usage: $0 LISTEN ROOT UPSTREAM_SERVER..." >&2
  exit 2
fi
listen=$1
root=$2
shift 2
servers=""
admin_servers=""
for s in "$@"; do
  servers+="        server $s max_fails=1 fail_timeout=5s;"$'\n'
  admin_servers+="        server $s max_fails=0;"$'\n'
done

conf="$(dirname "$0")/nginx.conf"
for marker in '# @listen$' '# @root$' '^ *# @upstream-begin$' '^ *# @upstream-end$'; do
  n=$(grep -c -E -- "$marker" "$conf" || true)
  if [ "$n" != 1 ]; then
    echo "$0: marker /$marker/ appears $n times in $conf (expected once)" >&2
    exit 1
  fi
done

LISTEN="$listen" ROOT="$root" SERVERS="$servers" ADMIN_SERVERS="$admin_servers" awk '
  /# @listen$/ { sub(/listen [^;]*;/, "listen " ENVIRON["LISTEN"] ";") }
  /# @root$/   { sub(/root [^;]*;/, "root " ENVIRON["ROOT"] ";") }
  /^ *# @upstream-begin$/ {
    print "    upstream cauldron_hosts {"
    print "        zone cauldron_hosts 64k;"
    print "        least_conn;"
    printf "%s", ENVIRON["SERVERS"]
    print "        keepalive 32;"
    print "    }"
    print "    upstream cauldron_admin {"
    print "        zone cauldron_admin 64k;"
    printf "%s", ENVIRON["ADMIN_SERVERS"]
    print "    }"
    skip = 1
    next
  }
  /^ *# @upstream-end$/ { skip = 0; next }
  !skip { print }
' "$conf"
