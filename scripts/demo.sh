#!/usr/bin/env bash
# The README's demo, on defaults that need no setup:
#  1. website: builds examples/website (its pages baked into the sealed image) and runs it with
#     user-mode networking, publishing its port 80 on 127.0.0.1:8080 (no root, no TAP), then
#     fetches pages with curl (or Node, if curl is missing) and stops it.
#  2. hello: prints a greeting and exits with the status it chooses.
#  3. ping (root only): answers Linux's ping over a TAP in a private network namespace, which the
#     demo makes (Linux at 198.18.0.1, the appliance at 198.18.0.2) and removes afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
atoll() { node bin/atoll.cjs "$@"; }
port="${ATOLL_DEMO_PORT:-8080}"

appliance=""
ns=""
cleanup() {
  if [ -n "$appliance" ]; then kill "$appliance" 2>/dev/null || true; wait "$appliance" 2>/dev/null || true; fi
  if [ -n "$ns" ]; then ip netns del "$ns" 2>/dev/null || true; fi
}
trap cleanup EXIT INT TERM

fetch() {
  if command -v curl >/dev/null; then curl -sS --compressed -i "$1"; else node -e 'fetch(process.argv[1]).then(async (r) => console.log(r.status, r.statusText, "\n" + await r.text()))' "$1"; fi
}

echo "== atoll build examples/website"
image=$(atoll build examples/website)
atoll inspect "$image"
echo "== atoll run $image -p $port:80   (user-mode networking: no root, no TAP)"
node bin/atoll.cjs run "$image" -p "$port:80" &
appliance=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
echo "== GET http://127.0.0.1:$port/"
fetch "http://127.0.0.1:$port/" | head -20
echo "..."
echo "== GET http://127.0.0.1:$port/nope"
fetch "http://127.0.0.1:$port/nope" | head -3
kill "$appliance"; wait "$appliance" 2>/dev/null || true; appliance=""

echo "== atoll build examples/hello && atoll run -- demo"
atoll run "$(atoll build examples/hello)" -- demo

if [ "$(id -u)" != 0 ] || [ ! -e /dev/net/tun ]; then
  echo "(skipping the ping-over-TAP demo: it needs root and /dev/net/tun to make a private namespace)"
  exit 0
fi
ns="atoll-demo-$$"
echo "== atoll build examples/ping"
image=$(atoll build examples/ping)
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" ip tuntap add dev tap0 mode tap
ip netns exec "$ns" ip addr add 198.18.0.1/24 dev tap0
ip netns exec "$ns" ip link set tap0 up
echo "== atoll run $image --net service=tap:tap0 --ipv4 service=198.18.0.2/24   (in namespace $ns)"
ip netns exec "$ns" node bin/atoll.cjs run "$image" --net service=tap:tap0 --ipv4 service=198.18.0.2/24 &
appliance=$!
sleep 0.5
echo "== ping -c 3 -s 8000 198.18.0.2   (Linux, in namespace $ns; fragmented both ways)"
ip netns exec "$ns" ping -c 3 -i 0.2 -s 8000 198.18.0.2
