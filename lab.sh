#!/usr/bin/env bash
# Main job: set up (idempotently), build, and run the whole lab on loopback through the seven steps.
# Extra arguments go to `scep-lab` (try `./lab.sh --help`).
set -eu
cd "$(dirname "$0")"
scripts/setup.sh
exec cargo run --locked --release -q -p scep-lab -- "${@:-demo}"
