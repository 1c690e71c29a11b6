#!/usr/bin/env bash
# The README's demo, on defaults that need no setup and no tool beyond Node.js:
#  1. website: builds examples/website (its pages baked into the sealed image) and runs it with
#     user-mode networking, publishing its port 80 on 127.0.0.1:8080 (no root, no TAP), then
#     fetches pages with curl (or Node's fetch, if curl is missing) and stops it.
#  2. hello: prints a greeting and exits with the status it chooses.
#  3. ping (root, `ip` and `ping` only): answers Linux's ping over a TAP in a private network
#     namespace, which the demo makes (Linux at 198.18.0.1, the appliance at 198.18.0.2) and
#     removes afterwards.
# A missing optional tool or permission skips its part with a one-line reason; the demo fails
# only when Atoll does. ATOLL_DEMO_PORT chooses the host port (default 8080, or a free one when
# 8080 is taken).
set -euo pipefail
cd "$(dirname "$0")/.."
atoll() { node bin/atoll.cjs "$@"; }
have() { command -v "$1" >/dev/null 2>&1; }
skip() { echo "(skipping $1: $2)"; }
# True when something accepts TCP connections on 127.0.0.1:$1 (bash's /dev/tcp: no tool needed).
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

appliance=""
ns=""
cleanup() {
  if [ -n "$appliance" ]; then kill "$appliance" 2>/dev/null || true; wait "$appliance" 2>/dev/null || true; fi
  if [ -n "$ns" ]; then ip netns del "$ns" 2>/dev/null || true; fi
}
trap cleanup EXIT INT TERM

# Prints the response's status line, header fields and body, as `curl -i` does.
fetch() {
  if have curl; then
    curl -sS --compressed -i "$1"
  else
    node -e '
      const response = await fetch(process.argv[1]);
      console.log(`HTTP/1.1 ${response.status} ${response.statusText}`);
      for (const [name, value] of response.headers) console.log(`${name}: ${value}`);
      console.log("\n" + await response.text());' --input-type=module "$1"
  fi
}

port="${ATOLL_DEMO_PORT:-8080}"
if listening "$port"; then
  if [ -n "${ATOLL_DEMO_PORT:-}" ]; then
    echo "demo: 127.0.0.1:$port (ATOLL_DEMO_PORT) is already in use: choose a free port" >&2
    exit 1
  fi
  port=$(node -e 'const s = require("node:net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
  echo "(127.0.0.1:8080 is in use: publishing on $port instead; ATOLL_DEMO_PORT chooses the port)"
fi

echo "== atoll build examples/website"
image=$(atoll build examples/website)
atoll inspect "$image"
echo "== atoll run $image -p $port:80   (user-mode networking: no root, no TAP)"
node bin/atoll.cjs run "$image" -p "$port:80" &
appliance=$!
for _ in $(seq 1 150); do
  if listening "$port"; then break; fi
  if ! kill -0 "$appliance" 2>/dev/null; then
    wait "$appliance" && status=0 || status=$?
    appliance=""
    echo "demo: the website appliance exited with status $status before it served (its messages are above)" >&2
    exit 1
  fi
  sleep 0.1
done
echo "== GET http://127.0.0.1:$port/$(have curl || echo '   (curl is not installed: fetched with Node)')"
# The gateway listens on the host port before the appliance has its address and its listener (it
# learns them by DHCP first); a connection relayed before then is refused by the appliance and
# reset, as with any published port whose service is still starting. So retry for a while.
for attempt in $(seq 1 50); do
  if response=$(fetch "http://127.0.0.1:$port/" 2>/dev/null); then break; fi
  if [ "$attempt" -eq 50 ]; then response=$(fetch "http://127.0.0.1:$port/"); fi
  sleep 0.1
done
head -n 20 <<<"$response"
echo "..."
echo "== GET http://127.0.0.1:$port/nope"
response=$(fetch "http://127.0.0.1:$port/nope")
head -n 3 <<<"$response"
kill "$appliance"; wait "$appliance" 2>/dev/null || true; appliance=""

echo "== atoll build examples/hello && atoll run -- demo"
atoll run "$(atoll build examples/hello)" -- demo

part="the ping-over-TAP demo"
if [ "$(id -u)" != 0 ] || [ ! -e /dev/net/tun ]; then
  skip "$part" "it needs root and /dev/net/tun to make a private network namespace"
  exit 0
fi
if ! have ip; then
  skip "$part" "no 'ip' command to make a network namespace (apt-get install iproute2)"
  exit 0
fi
if ! have ping; then
  skip "$part" "no 'ping' command to be the appliance's peer (apt-get install iputils-ping)"
  exit 0
fi
ns="atoll-demo-$$"
if ! ip netns add "$ns" 2>/dev/null; then
  ns=""
  skip "$part" "'ip netns add' is not permitted here (a container without CAP_SYS_ADMIN?)"
  exit 0
fi
echo "== atoll build examples/ping"
image=$(atoll build examples/ping)
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
