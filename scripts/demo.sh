#!/usr/bin/env bash
# The README's demo: build two appliances and run them.
#  1. hello: prints a greeting and exits with the status it chooses.
#  2. ping: answers ARP and ping over a TAP device. The demo makes its own network namespace
#     (so nothing on the host changes), with Linux at 198.18.0.1 and the appliance at 198.18.0.2,
#     and removes it afterwards. This part needs root (for the namespace and the TAP).
set -euo pipefail
cd "$(dirname "$0")/.."
atoll() { node bin/atoll.cjs "$@"; }

echo "== atoll build examples/hello"
image=$(atoll build examples/hello)
atoll inspect "$image"
echo "== atoll run $image -- demo"
atoll run "$image" -- demo

if [ "$(id -u)" != 0 ] || [ ! -e /dev/net/tun ]; then
  echo "(skipping the ping demo: it needs root and /dev/net/tun to make a TAP in a private namespace)"
  exit 0
fi

ns="atoll-demo-$$"
appliance=""
cleanup() {
  [ -n "$appliance" ] && kill "$appliance" 2>/dev/null && wait "$appliance" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

echo "== atoll build examples/ping"
image=$(atoll build examples/ping)
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" ip tuntap add dev tap0 mode tap
ip netns exec "$ns" ip addr add 198.18.0.1/24 dev tap0
ip netns exec "$ns" ip link set tap0 up
echo "== atoll run $image --net service=tap:tap0 --ipv4 service=198.18.0.2/24 (in namespace $ns)"
ip netns exec "$ns" node bin/atoll.cjs run "$image" --net service=tap:tap0 --ipv4 service=198.18.0.2/24 &
appliance=$!
sleep 0.5
echo "== ping -c 5 198.18.0.2   (Linux, in namespace $ns)"
ip netns exec "$ns" ping -c 5 -i 0.2 198.18.0.2
