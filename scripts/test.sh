#!/usr/bin/env bash
# Runs every test against real Redis and a real browser. Arguments are
# passed to `go test` (CI passes -race). On a fresh Debian or Ubuntu machine
# it installs what is missing (as root, or with passwordless sudo):
# redis-server, and Debian's chromium for the dashboard's browser tests in
# internal/web (they fail, never skip, without a browser). It starts a
# throwaway Redis for the shared tests when none answers on 127.0.0.1:6379
# (or at $EVENTBUS_TEST_REDIS_URL).
set -euo pipefail
cd "$(dirname "$0")/.."

# install PACKAGE: installs a Debian package with apt-get, as root or with
# passwordless sudo; otherwise prints the command to run and exits 1.
apt_updated=""
install() {
  local sudo=""
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    sudo=""
  elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo"
  else
    echo "test.sh: $1 is missing. Install it, then run this again:" >&2
    echo "    sudo apt-get install -y $1" >&2
    exit 1
  fi
  echo "test.sh: installing $1 with ${sudo:+sudo }apt-get" >&2
  if [ -z "$apt_updated" ]; then
    $sudo apt-get update -qq
    apt_updated=1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

if ! command -v redis-server >/dev/null 2>&1; then
  install redis-server
fi
# The names chromedp looks for on PATH; Debian's package is chromium.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 &&
  ! command -v google-chrome >/dev/null 2>&1 && ! command -v google-chrome-stable >/dev/null 2>&1; then
  install chromium
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
