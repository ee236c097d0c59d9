#!/usr/bin/env bash
# The test suite: set up (idempotently), then every test of the workspace.
# Under CI=true tests that need PostgreSQL or a third-party binary fail instead of skipping.
set -eu
cd "$(dirname "$0")"
scripts/setup.sh
exec cargo test --locked --workspace "$@"
