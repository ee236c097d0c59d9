#!/usr/bin/env bash
# Main job: set up (idempotently), build, and run the whole lab on loopback through the seven steps.
# Extra arguments go to `scep-lab` (try `./lab.sh --help`). `./lab.sh serve --postgres ...` serves
# on a throwaway PostgreSQL cluster (scripts/throwaway-postgres.sh), removed when serve stops.
set -eu
cd "$(dirname "$0")"
scripts/setup.sh
# SCEP_LAB_BIN: a scep-lab binary built already (tests/tests/deployments.rs runs the README's
# lines with the build under test), instead of cargo's release build.
if [ -n "${SCEP_LAB_BIN:-}" ]; then
    run=("$SCEP_LAB_BIN")
else
    run=(cargo run --locked --release -q -p scep-lab --)
fi
if [ "${1:-}" = serve ]; then
    args=()
    postgres=""
    for a in "$@"; do
        if [ "$a" = --postgres ]; then postgres=1; else args+=("$a"); fi
    done
    if [ -n "$postgres" ]; then
        exec scripts/throwaway-postgres.sh "${run[@]}" "${args[@]}"
    fi
fi
exec "${run[@]}" "${@:-demo}"
