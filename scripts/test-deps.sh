#!/bin/sh
# What `npm test` needs besides Node: Debian's Chromium (browser tests),
# redis-server and redis-cli (Redis and Redis Cluster tests), coturn (TURN
# tests), Caddy (the https proxy tests), unshare and ip (private network
# namespaces). Run first by `npm test`: installs what is missing when run as
# root on a machine with apt-get, else stops at once naming it.
set -eu

need=""
want() { command -v "$1" >/dev/null 2>&1 || need="$need $2"; }
want chromium chromium
want redis-server redis-server
want redis-cli redis-tools
want turnserver coturn
want caddy caddy
want unshare util-linux
want ip iproute2

[ -z "$need" ] && exit 0
# One package may provide two commands: name each once.
need=$(echo $need | tr ' ' '\n' | sort -u | tr '\n' ' ')

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: installing$need" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >&2
  exit 0
fi
echo "test-deps: npm test needs these Debian packages, which are missing:$need" >&2
echo "test-deps: install them (sudo apt-get install$need) and run npm test again" >&2
exit 1
