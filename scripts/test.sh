#!/usr/bin/env bash
# Runs every test against real Redis. Arguments are passed to `go test`
# (CI passes -race). On a fresh Debian or Ubuntu machine it installs
# redis-server when missing (as root, or with passwordless sudo), and starts
# a throwaway Redis for the shared tests when none answers on
# 127.0.0.1:6379 (or at $EVENTBUS_TEST_REDIS_URL).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing redis-server with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    echo "test.sh: installing redis-server with sudo apt-get" >&2
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "test.sh: redis-server is missing. Install it, then run this again:" >&2
    echo "    sudo apt-get install -y redis-server" >&2
    exit 1
  fi
fi

# answers HOST PORT: true when a Redis answers PING there.
answers() {
  local reply
  { exec 3<>"/dev/tcp/$1/$2"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  read -r -t 2 reply <&3 || true
  exec 3<&- 3>&-
  [[ "$reply" == "+PONG"* ]]
}

if [ -z "${EVENTBUS_TEST_REDIS_URL:-}" ] && ! answers 127.0.0.1 6379; then
  dir=$(mktemp -d)
  for port in $(shuf -i 20000-40000 -n 20); do
    answers 127.0.0.1 "$port" && continue
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
      --daemonize no --logfile "$dir/redis.log" &
    pid=$!
    trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
    for _ in $(seq 50); do answers 127.0.0.1 "$port" && break; sleep 0.1; done
    if answers 127.0.0.1 "$port"; then
      export EVENTBUS_TEST_REDIS_URL="redis://127.0.0.1:$port"
      echo "test.sh: no Redis on 127.0.0.1:6379; started one for the tests on port $port" >&2
      break
    fi
    kill "$pid" 2>/dev/null || true
  done
  if [ -z "${EVENTBUS_TEST_REDIS_URL:-}" ]; then
    echo "test.sh: could not start a redis-server for the tests" >&2
    exit 1
  fi
fi

go test "$@" ./...
