#!/usr/bin/env bash
# The renewal herd of the reliability catalogue (L5), long version: DEVICES devices enrolled
# together through the whole lab (`scep-lab serve`: ca-mock, policy-module and ndes-proxy in
# one process, SQLite WAL synchronous=FULL, admission control at its default of 128
# PKIOperations in progress, Retry-After 30 s), then every one of them renews at the same
# moment (`device-fleet --renew-herd`: forced renewal, HERD_CONCURRENCY at once).
# The profile's renewal window is the whole lifetime (threshold 100 %), so the fleet is in its
# window at once (the policy module refuses a renewal before the window opens).
# Refused devices back off on Retry-After with jitter (the profile: 10 retries, no delay of
# its own); a device whose run ends without a certificate tries again in the next round, as
# at its next check-in. Figures: renewed before expiry, rounds, 503 answers and retries,
# why a run ended without a certificate, the server's peak RSS (VmHWM), wall time. The lab's
# and the fleet's logs of the last run stay in target/bench-herd/. The short version runs in CI
# (tests/tests/reliability_herd.rs).
#
#   bench/herd.sh [DEVICES] [HERD_CONCURRENCY]      # default 10000 1024
#
# HERD_KEY (default ec256): device key type. RSA-2048 (HERD_KEY=rsa2048) renews with a
# RenewalReq, as the CI version does, but needs 2 x DEVICES RSA keys in the pool (generated
# once, about 0.15 CPU-s each); EC devices renew with a PKCSReq and a fresh challenge.
# PROFILE=dev uses the debug build; HERD_BIN_DIR=DIR uses the binaries already in DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES="${1:-10000}"; HERD_CONCURRENCY="${2:-1024}"; KEY="${HERD_KEY:-ec256}"
TARGET="${CARGO_TARGET_DIR:-target}"
if [ -n "${HERD_BIN_DIR:-}" ]; then BIN="$HERD_BIN_DIR"
elif [ "${PROFILE:-release}" = dev ]; then BIN="$TARGET/debug"; cargo build -q --locked -p scep-lab -p device-fleet -p policy-module
else BIN="$TARGET/release"; cargo build --release -q --locked -p scep-lab -p device-fleet -p policy-module; fi
WORK="$(mktemp -d)"; POOL="$TARGET/device-agent-bench/key-pool"; mkdir -p "$POOL"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
CA_PORT=$(free_port); POLICY_PORT=$(free_port); SCEP_PORT=$(free_port)
"$BIN/scep-lab" serve --data "$WORK/lab" --ports "$CA_PORT" "$POLICY_PORT" "$SCEP_PORT" > "$WORK/lab.out" 2> "$WORK/lab.err" &
LAB=$!
# The logs of the last run stay in $TARGET/bench-herd (the lab's and the fleet's), to read why
# a device failed; the rest of the work directory goes.
LOGS="$TARGET/bench-herd"; mkdir -p "$LOGS"
trap 'kill $LAB 2>/dev/null; wait $LAB 2>/dev/null || true; cp "$WORK"/lab.err "$WORK"/herd.err "$LOGS"/ 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 300); do grep -q '^serving' "$WORK/lab.out" 2>/dev/null && break; sleep 0.2; done
grep -q '^serving' "$WORK/lab.out" || { cat "$WORK/lab.err" >&2; echo "lab did not start" >&2; exit 1; }
POLICY="http://127.0.0.1:$POLICY_PORT"
SCEP_URL=$(awk '/^ndes-proxy/ {print $2}' "$WORK/lab.out")
ROOT=$(awk '/^root CA SHA-256/ {print $NF}' "$WORK/lab.out")
TOKEN_FILE="$WORK/lab/secrets/policy-admin.token"
admin() { POLICY_ADMIN_TOKEN="$(cat "$TOKEN_FILE")" "$BIN/policy-module" admin --server "$POLICY" "$@" > /dev/null; }
case "$KEY" in
    rsa*) ALG=rsa; SIZE="${KEY#rsa}"; USAGE='"digitalSignature", "keyEncipherment"' ;;
    ec*) ALG=ec; SIZE="${KEY#ec}"; USAGE='"digitalSignature"' ;;
    *) echo "HERD_KEY: rsa2048 or ec256" >&2; exit 2 ;;
esac
cat > "$WORK/profile.json" <<JSON
{"id": "herd", "name": "Herd device certificate", "certificate_type": "device",
 "subject_name_format": "CN={{DeviceName}},OU=Herd,O=scep-lab", "key_usage": [$USAGE],
 "key_algorithm": "$ALG", "key_size": $SIZE, "hash_algorithm": "sha256", "validity_days": 365,
 "renewal_threshold_percent": 100, "template": "IPSECIntermediateOffline",
 "scep_server_urls": ["$SCEP_URL"], "ca_thumbprint": "$ROOT",
 "retry_count": 10, "retry_delay_minutes": 0}
JSON
admin create-profile "$WORK/profile.json"
curl -fsS -o /dev/null -X POST "$POLICY/api/v1/groups" -H "authorization: Bearer $(cat "$TOKEN_FILE")" \
    -H 'content-type: application/json' -d '{"id": "herd", "name": "Herd"}'
admin assign herd group herd
START=$(date +%s.%N)
"$BIN/device-fleet" --timeout 120 --devices "$DEVICES" --concurrency 96 --mdm "$POLICY" \
    --admin-token-file "$TOKEN_FILE" --group herd --key "$KEY" --key-pool "$POOL" \
    --state-root "$WORK/devices" --prefix herd --renew-herd --herd-concurrency "$HERD_CONCURRENCY" \
    --json > "$WORK/herd.json" 2> "$WORK/herd.err" || true
END=$(date +%s.%N)
PEAK_KIB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$LAB/status")
[ -s "$WORK/herd.json" ] || { tail -20 "$WORK/herd.err" >&2; echo "fleet failed" >&2; exit 1; }
python3 - "$WORK/herd.json" "$PEAK_KIB" "$START" "$END" "$KEY" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); peak = int(sys.argv[2]); wall = float(sys.argv[4]) - float(sys.argv[3])
h = r.get("herd") or {}
print(f"figure enrolled {r['succeeded']}/{r['devices']} ({r['key']}, key phase {r['key_phase_secs']:.1f} s, "
      f"{r['keys_generated']} generated) in {r['enroll_phase_secs']:.1f} s, {r['enrollments_per_sec']:.1f}/s; "
      f"failed: " + (", ".join(f"{k} x{v}" for k, v in sorted((r.get('failures') or {}).items())) or "none"))
print(f"figure herd renewed {h.get('renewed')}/{h.get('devices')} in {len(h.get('renewed_per_round', []))} round(s) "
      f"{h.get('renewed_per_round')}, {h.get('renew_phase_secs', 0):.1f} s, {h.get('renewals_per_sec', 0):.1f} renewals/s, "
      f"p50 {h.get('latency', {}).get('p50_ms', 0)/1000:.1f} s p99 {h.get('latency', {}).get('p99_ms', 0)/1000:.1f} s")
print(f"figure herd {h.get('pki_operations')} PKIOperations for {h.get('devices')} renewals: "
      f"{h.get('answered_503')} answered 503 ({h.get('retry_after')} with Retry-After), "
      f"min remaining validity {h.get('min_remaining_validity_secs', 0)/86400:.1f} days")
ended = h.get("ended_without_certificate") or {}
print("figure herd runs that ended without a new certificate (retried next round): "
      + (", ".join(f"{k} x{v}" for k, v in sorted(ended.items())) or "none"))
print(f"figure server peak RSS (VmHWM, enrolment and herd) {peak/1024:.1f} MiB; wall time {wall:.1f} s")
ok = r["succeeded"] == r["devices"] and h.get("renewed") == h.get("devices")
sys.exit(0 if ok else 1)
PY
