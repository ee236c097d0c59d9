#!/usr/bin/env bash
# Main job: set up (idempotently), build, and run the whole lab on loopback through the seven steps.
# Extra arguments go to `scep-lab` (try `./lab.sh --help`). `./lab.sh serve --postgres ...` serves
# on a throwaway PostgreSQL cluster (scripts/throwaway-postgres.sh), removed when serve stops.
set -eu
cd "$(dirname "$0")"
scripts/setup.sh
if [ "${1:-}" = serve ]; then
    args=()
    postgres=""
    for a in "$@"; do
        if [ "$a" = --postgres ]; then postgres=1; else args+=("$a"); fi
    done
    if [ -n "$postgres" ]; then
        exec scripts/throwaway-postgres.sh cargo run --locked --release -q -p scep-lab -- "${args[@]}"
    fi
fi
exec cargo run --locked --release -q -p scep-lab -- "${@:-demo}"
