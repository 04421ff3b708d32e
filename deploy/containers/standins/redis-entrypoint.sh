#!/bin/sh
# Stand-in entry point: as the official image's, adds --protected-mode no to a bare redis-server.
set -eu
if [ "$1" = "redis-server" ]; then
  shift
  exec redis-server --bind 0.0.0.0 --protected-mode no "$@"
fi
exec "$@"
