#!/bin/sh
# The two secrets every Dyad process and coturn must share, made once into DIR
# (a volume of docker-compose.yml) and read by each of them at start:
#   ADDRESS_HASH_KEY  the key client addresses are hashed with (bans and
#                     reports count per address, across processes)
#   TURN_SECRET       coturn's use-auth-secret, from which TURN credentials are made
# A value set in the environment (compose passes yours on) wins over the made one.
# Losing DIR loses nothing worth keeping: new secrets, old bans forgotten.
#
#   sh deploy/secrets.sh DIR      then, in each process:  . DIR/env
set -eu
dir="${1:?usage: secrets.sh DIR}"
file="$dir/env"
mkdir -p "$dir"
if [ ! -s "$file" ]; then
  # 24 random bytes as hex: nothing a shell or a command line treats specially.
  random() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
  tmp="$file.$$"
  {
    echo '# Made by deploy/secrets.sh; a value set in the environment wins.'
    echo "ADDRESS_HASH_KEY=\"\${ADDRESS_HASH_KEY:-$(random)}\""
    echo "TURN_SECRET=\"\${TURN_SECRET:-$(random)}\""
    echo 'export ADDRESS_HASH_KEY TURN_SECRET'
  } >"$tmp"
  # Read by processes running as other users (node, coturn's nobody); written by nobody.
  chmod 0444 "$tmp"
  mv "$tmp" "$file"
fi
