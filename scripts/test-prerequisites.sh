#!/bin/sh
# Makes sure the tools the test suite runs for real are installed (idempotent; the `pretest`
# npm script calls it). Today: redis-server, for the Redis state driver tests.
# Fast path: one `command -v` when everything is there.
set -eu

if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi

uid=$(id -u)
if [ "$uid" != 0 ]; then
  echo "test prerequisites: redis-server is missing; install it with: sudo apt-get install -y redis-server" >&2
  exit 1
fi

echo "test prerequisites: installing redis-server" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq redis-server >/dev/null
if ! command -v redis-server >/dev/null 2>&1; then
  echo "test prerequisites: redis-server is still missing after apt-get install" >&2
  exit 1
fi
