#!/usr/bin/env bash
# Long versions of the load rows of the reliability catalogue (tests/RELIABILITY.md), through
# the whole lab on 127.0.0.1, release build, one scenario at a time:
# - L1: many identical PKCSReqs (same transactionID, same CSR) at once;
# - L4 then L8: many distinct enrolments at once, then every one of those devices retired at
#   once, on SQLite and on PostgreSQL (a throwaway cluster from testkit).
# The assertions of the short test versions hold at any size (exactly one certificate for L1;
# unique, recorded serials, zero 5xx, each revocation once in the CRL, a clean reconciler for
# L4/L8); the `figure` lines are what BENCHMARKS.md records.
#
#   bench/reliability.sh [L1_COPIES] [L4_DEVICES] [L11_CLIENTS]
#
# PROFILE=dev runs the debug build instead of release (quicker to build, slower to run).
set -euo pipefail
cd "$(dirname "$0")/.."
export SCEP_LAB_L1_COPIES="${1:-500}" SCEP_LAB_L4_DEVICES="${2:-300}" SCEP_LAB_L11_CLIENTS="${3:-20}"
profile=(--release)
if [ "${PROFILE:-release}" = dev ]; then profile=(); fi
cargo test "${profile[@]}" --locked -q -p scep-lab-tests --test reliability_lab -- \
    --nocapture --test-threads 1 2>&1 | grep -oE 'figure .*|test result.*|panicked.*'
