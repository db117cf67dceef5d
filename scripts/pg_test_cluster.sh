#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the fleet tests, from Debian's `postgresql` package:
# initdb in a temporary folder, the server on 127.0.0.1 and a socket in that folder, trust
# authentication (nothing else can reach it). Run as the `postgres` user when called as root,
# since the server refuses to run as root.
#
#   scripts/pg_test_cluster.sh start [DIR]   prints MIMML_TEST_POSTGRES=URL and MIMML_TEST_PGDATA=DIR
#   scripts/pg_test_cluster.sh restart DIR   restarts it (connections are cut: fault injection)
#   scripts/pg_test_cluster.sh stop DIR      stops it and removes DIR
set -euo pipefail

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "PostgreSQL server binaries not found under /usr/lib/postgresql: apt-get install postgresql" >&2
    exit 1
fi

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

ctl() {
    local dir=$1; shift
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 "$@" >/dev/null
}

case "${1:-}" in
start)
    dir=${2:-$(mktemp -d /tmp/mimml-pg.XXXXXX)}
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    # A free port: the kernel picks one, the server takes it a moment later.
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-instructions >/dev/null
    ctl "$dir" -o "-k $dir -c listen_addresses=127.0.0.1 -p $port -c max_connections=200" start
    echo "MIMML_TEST_POSTGRES=postgres://postgres@127.0.0.1:$port/postgres"
    echo "MIMML_TEST_PGDATA=$dir"
    ;;
restart)
    ctl "$2" -m immediate restart
    ;;
stop)
    ctl "$2" -m fast stop || true
    rm -rf "$2"
    ;;
*)
    echo "usage: $0 start [DIR] | restart DIR | stop DIR" >&2
    exit 2
    ;;
esac
