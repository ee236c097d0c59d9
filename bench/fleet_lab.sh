#!/usr/bin/env bash
# Full-pipeline fleet benchmark: N simulated devices register with policy-module, check in,
# get a per-device challenge, and enroll through ndes-proxy and ca-mock (SQLite, durable
# settings), all on 127.0.0.1 from one `scep-lab serve`. Figures go into BENCHMARKS.md.
#
#   bench/fleet_lab.sh [DEVICES] [CONCURRENCY]
#
# RSA-2048 device keys come from a pool under target/ (generated once, reported apart).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES="${1:-1000}"; CONCURRENCY="${2:-16}"
cargo build --release -q -p scep-lab -p device-fleet -p policy-module
WORK="$(mktemp -d)"; POOL=target/device-agent-bench/key-pool; mkdir -p "$POOL"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
CA_PORT=$(free_port); POLICY_PORT=$(free_port); SCEP_PORT=$(free_port)
target/release/scep-lab serve --data "$WORK/lab" --ports "$CA_PORT" "$POLICY_PORT" "$SCEP_PORT" > "$WORK/lab.out" 2> "$WORK/lab.err" &
LAB=$!
trap 'kill $LAB 2>/dev/null; wait $LAB 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 300); do grep -q '^serving' "$WORK/lab.out" 2>/dev/null && break; sleep 0.2; done
grep -q '^serving' "$WORK/lab.out" || { cat "$WORK/lab.err" >&2; echo "lab did not start" >&2; exit 1; }
POLICY="http://127.0.0.1:$POLICY_PORT"
SCEP_URL=$(awk '/^ndes-proxy/ {print $2}' "$WORK/lab.out")
ROOT=$(awk '/^root CA SHA-256/ {print $NF}' "$WORK/lab.out")
TOKEN_FILE="$WORK/lab/secrets/policy-admin.token"
admin() { POLICY_ADMIN_TOKEN="$(cat "$TOKEN_FILE")" target/release/policy-module admin --server "$POLICY" "$@" > /dev/null; }
cat > "$WORK/profile.json" <<JSON
{"id": "fleet", "name": "Fleet device certificate", "certificate_type": "device",
 "subject_name_format": "CN={{DeviceName}},OU=Fleet,O=scep-lab", "key_usage": ["digitalSignature", "keyEncipherment"],
 "key_algorithm": "rsa", "key_size": 2048, "hash_algorithm": "sha256", "validity_days": 365,
 "renewal_threshold_percent": 20, "template": "IPSECIntermediateOffline",
 "scep_server_urls": ["$SCEP_URL"], "ca_thumbprint": "$ROOT"}
JSON
admin create-profile "$WORK/profile.json"
POLICY_ADMIN_TOKEN="$(cat "$TOKEN_FILE")" curl -fsS -o /dev/null -X POST "$POLICY/api/v1/groups" \
    -H "authorization: Bearer $(cat "$TOKEN_FILE")" -H 'content-type: application/json' -d '{"id": "fleet", "name": "Fleet"}'
admin assign fleet group fleet
target/release/device-fleet --devices "$DEVICES" --concurrency "$CONCURRENCY" --mdm "$POLICY" \
    --admin-token-file "$TOKEN_FILE" --group fleet --key-pool "$POOL" --state-root "$WORK/devices" --json
