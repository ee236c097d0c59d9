#!/usr/bin/env bash
# Run a command beside a throwaway PostgreSQL cluster, as the tests do (testkit/src/pg.rs):
# initdb in a temporary directory (as the `postgres` user when run as root, since PostgreSQL
# refuses root), trust authentication on a free 127.0.0.1 port, fsync off. The command gets
# `--postgres-url-file FILE` appended (`scep-lab serve` creates its databases from that URL).
# The server is stopped and its directory removed when the command ends, Ctrl-C included.
#   scripts/throwaway-postgres.sh scep-lab serve --data scep-lab-data
set -eu
[ "$#" -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }

bin=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { bin="$d"; break; }
done
if [ -z "$bin" ] && command -v initdb > /dev/null; then
    bin="$(dirname "$(command -v initdb)")"
fi
if [ -z "$bin" ]; then
    "$(dirname "$0")/setup.sh"
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V -r | head -1)"
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/scep-lab-pg.XXXXXX")"
mkdir "$dir/run"
as_pg() { "$@"; }
if [ "$(id -u)" = 0 ]; then
    chown -R postgres: "$dir"
    as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
fi
cleanup() {
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_pg "$bin/pg_ctl" stop -D "$dir/data" -m immediate -w > /dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
    --no-instructions > "$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
as_pg "$bin/pg_ctl" start -D "$dir/data" -l "$dir/postgres.log" -w -t 60 -o \
    "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir/run -c fsync=off" \
    > /dev/null || { tail -20 "$dir/postgres.log" >&2; exit 1; }
printf 'postgres://postgres@127.0.0.1:%s/postgres\n' "$port" > "$dir/url"
echo "throwaway PostgreSQL on 127.0.0.1:$port in $dir (removed on exit)" >&2
"$@" --postgres-url-file "$dir/url"
