#!/usr/bin/env bash
# Fleet benchmark: N simulated devices enroll (plain SCEP, static challenge) against micromdm
# scepserver on 127.0.0.1, the figures that go into BENCHMARKS.md (## device-fleet).
#
#   fleet/benches/fleet_micromdm.sh [DEVICES] [CONCURRENCY] [KEY]
#
# Keys come from a key pool kept under target/ (the first run generates and saves them; the
# key phase is reported apart and is not part of enrollments/s). Prints the JSON summary of a
# run with a warm pool. Needs the Debian package `scep` (scripts/setup.sh).
#
# Concurrency above 1 measures micromdm's own race: its file depot fails concurrent issuance
# ("could not convert  to serial number" in its log, CertRep FAILURE badRequest here).
set -euo pipefail
cd "$(dirname "$0")/../.."
DEVICES="${1:-1000}"; CONCURRENCY="${2:-1}"; KEY="${3:-rsa2048}"
cargo build --release -q -p device-fleet
BIN=target/release/device-fleet
POOL=target/device-agent-bench/key-pool
WORK="$(mktemp -d)"
trap 'peers/micromdm-server.sh stop "$WORK/server" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
TRAFFIC_LOG=0 SERVER_DEBUG=0 peers/micromdm-server.sh start "$WORK/server" "$PORT" bench-secret >/dev/null
URL="http://127.0.0.1:$PORT/scep"
mkdir -p "$POOL"
# Warm the key pool (and the server) with a first run; its figures are not reported.
DEVICE_AGENT_CHALLENGE=bench-secret "$BIN" --devices "$DEVICES" --concurrency "$CONCURRENCY" \
    --url "$URL" --key "$KEY" --key-pool "$POOL" --state-root "$WORK/warm" --json > "$WORK/warm.json" || true
rm -rf "$WORK/warm"
DEVICE_AGENT_CHALLENGE=bench-secret "$BIN" --devices "$DEVICES" --concurrency "$CONCURRENCY" \
    --url "$URL" --key "$KEY" --key-pool "$POOL" --state-root "$WORK/run" --json
echo "key generation of the warm-up run (keys_generated, key_phase_secs):" >&2
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["keys_generated"], round(r["key_phase_secs"],2))' "$WORK/warm.json" >&2
