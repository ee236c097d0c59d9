#!/usr/bin/env bash
# The enrollment benchmark of issues 8 and 19, in one run on this machine (127.0.0.1 only):
#
#   1. the OpenSSL bound: RSA-2048 private operations/s on all cores (`openssl speed -multi`),
#      and what that allows at 3 server-side private operations per enrollment;
#   2. server-side points with the light client (`device-fleet load`, issue 19): every PKCSReq
#      built before the timed window (pooled keys, CSR, envelope, signature; one-time
#      challenges fetched from mscep_admin), sent with keep-alive, N in flight, every CertRep
#      checked after the window (RA signature, device key, signed by the CA, unique serial):
#      ndes-proxy in plain mode (static challenge, CA in process, SQLite synchronous=FULL),
#      the full pipeline (`scep-lab serve`: one-time mscep_admin challenges, policy verify and
#      notify, CA over HTTP, every store durable) on SQLite and, when `scep-lab serve` takes
#      `--postgres-url-file`, on a throwaway PostgreSQL with fsync on, and micromdm
#      `scepserver` with the same client; server CPU over the window from /proc/PID/stat and
#      peak RSS (VmHWM) per point; the issue's targets table against this run's bound and an
#      SVG chart of valid/s and p99 against concurrency per server (bench/report.py);
#   3. the whole device flow (issue 8's points, `device-fleet`: the device's own work,
#      registration and check-in inside the timing): micromdm and ndes-proxy plain at
#      concurrency 1, 4, 16, 64, the full pipeline in one process and over HTTP.
#
#   bench/run.sh                 # ~10-15 minutes on a quiet 2-core machine; tables last
#   BENCH_QUICK=1 bench/run.sh   # small sizes: checks the script in a few minutes
#
# Knobs (environment): BENCH_LOAD (requests per light-client point, default 2000),
# BENCH_LOAD_CONCURRENCY ("1 16 64"), BENCH_PLAIN (enrollments per whole-flow plain point,
# 1000), BENCH_MICROMDM (per whole-flow micromdm point, 200), BENCH_FULL (devices per
# whole-flow full-pipeline point, 500), BENCH_CONCURRENCY (whole-flow points, "1 4 16 64"),
# BENCH_FLOW=0 (skip the whole-flow points), BENCH_OUT (also write the tables to this file),
# BENCH_SVG (the chart; default enrollment-curves.svg beside BENCHMARKS.md),
# BENCH_ONLY (`plain`: only the OpenSSL bound and ndes-proxy's plain mode, e.g.
# `BENCH_ONLY=plain BENCH_LOAD_CONCURRENCY=16 bench/run.sh` to compare server CPU per enrollment;
# `full`: only the bound and the full pipeline on SQLite, to compare settings of it),
# BENCH_LAB (the `scep-lab` binary that serves; default this checkout's release build, so two
# builds can be compared with the same client).
# Each point gets a fresh server (and database), so peak RSS is that point's. Device state
# goes to /dev/shm when it exists: the client's fsyncs are not the server's cost.
# Needs what README's set-up installs: the Rust toolchain, openssl, python3, and for the
# micromdm rows the Debian package `scep` plus socat (peers/setup.sh); without scepserver
# those rows are skipped and said so; PostgreSQL rows need Debian's postgresql.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    Q_LOAD=100 Q_PLAIN=50 Q_MICROMDM=30 Q_FULL=30 Q_CONC="1 16" Q_SPEED=2
else
    Q_LOAD=2000 Q_PLAIN=1000 Q_MICROMDM=200 Q_FULL=500 Q_CONC="1 4 16 64" Q_SPEED=5
fi
N_LOAD="${BENCH_LOAD:-$Q_LOAD}"
LOAD_CONCURRENCY="${BENCH_LOAD_CONCURRENCY:-1 16 64}"
N_PLAIN="${BENCH_PLAIN:-$Q_PLAIN}"
N_MICROMDM="${BENCH_MICROMDM:-$Q_MICROMDM}"
N_FULL="${BENCH_FULL:-$Q_FULL}"
CONCURRENCY="${BENCH_CONCURRENCY:-$Q_CONC}"
FLOW="${BENCH_FLOW:-1}"
SVG="${BENCH_SVG:-enrollment-curves.svg}"
ONLY="${BENCH_ONLY:-}"
case "$ONLY" in ''|plain|full) ;; *) echo "bench: BENCH_ONLY is empty, plain or full" >&2; exit 2 ;; esac
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET/release"
LAB_BIN="${BENCH_LAB:-$BIN/scep-lab}"
cargo build --release -q --locked -p scep-lab -p device-fleet -p policy-module -p ndes-proxy

WORK="$(mktemp -d)"
STATE_PARENT="$WORK"
[ -d /dev/shm ] && [ -w /dev/shm ] && STATE_PARENT="$(mktemp -d /dev/shm/scep-bench.XXXXXX)"
POOL="$TARGET/device-agent-bench/key-pool"
mkdir -p "$POOL"
RESULTS="$WORK/results.tsv"
LOAD_RESULTS="$WORK/load.tsv"
: > "$RESULTS"
: > "$LOAD_RESULTS"
SERVER_PIDS=()
MICROMDM_DIR=""
PG_DIR=""
cleanup() {
    for p in "${SERVER_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${SERVER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -n "$MICROMDM_DIR" ] && peers/micromdm-server.sh stop "$MICROMDM_DIR" >/dev/null 2>&1
    [ -n "$PG_DIR" ] && stop_pg
    rm -rf "$WORK" "$STATE_PARENT"
}
trap cleanup EXIT
say() { echo "[bench] $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
TICKS="$(getconf CLK_TCK)"
# CPU seconds (user + system, all threads) a process has used so far.
cpu_secs() { awk -v t="$TICKS" '{ split($0, a, ") "); split(a[2], f, " "); printf "%.3f", (f[12] + f[13]) / t }' "/proc/$1/stat"; }
# Peak resident set of a process, KiB.
peak_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
stop_server() { kill -INT "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; SERVER_PIDS=("${SERVER_PIDS[@]/$1}"); }

# fleet NAME DEVICES CONCURRENCY ARGS... -> $WORK/NAME.json (the report with the check).
fleet() {
    local name="$1" n="$2" c="$3"; shift 3
    rm -rf "$STATE_PARENT/$name"
    "$BIN/device-fleet" --timeout 60 --devices "$n" --concurrency "$c" --key rsa2048 \
        --key-pool "$POOL" --state-root "$STATE_PARENT/$name" --prefix "$name" --json "$@" \
        > "$WORK/$name.json" 2> "$WORK/$name.err" || true
    rm -rf "$STATE_PARENT/$name"
    [ -s "$WORK/$name.json" ] || { say "fleet $name failed:"; tail -5 "$WORK/$name.err" >&2; }
}

# record SERVER CONCURRENCY NAME CPU_SECS PEAK_KIB: one row from a fleet report.
record() {
    python3 - "$@" "$WORK/$3.json" >> "$RESULTS" <<'PY'
import json, sys
server, conc, name, cpu, kib, path = sys.argv[1:7]
try:
    r = json.load(open(path))
except Exception:
    print("\t".join([server, conc, "0", "0", "0", "0", "0", "0", "failed", "0"]))
    sys.exit()
valid = r["certificates"]["valid"]
bad = sum(r["certificates"]["invalid"].values()) + r["failed"]
per = float(cpu) / valid if valid else 0
row = "\t".join(str(x) for x in [server, conc, r["devices"], valid, bad,
      round(r["valid_per_sec"], 1), round(r["latency"]["p50_ms"], 1),
      round(r["latency"]["p99_ms"], 1), round(per * 1000, 2), int(kib) // 1024])
print(row)
print("[bench]   " + row, file=sys.stderr)
PY
}

# --- 1. The OpenSSL bound -----------------------------------------------------------------
CORES="$(nproc)"
say "openssl speed -multi $CORES rsa2048"
SIGN_PER_SEC="$(openssl speed -multi "$CORES" -seconds "$Q_SPEED" rsa2048 2>/dev/null |
    awk '/^rsa +2048 bits/ { print $(NF-1) }')"
# Server-side private-key operations per enrollment: RA decrypts the request's content key
# (1), the CA signs the certificate (1), the RA signs the CertRep (1).
SERVER_OPS=3
# The client on the same cores adds: CSR signature, its transient self-signed certificate,
# the request's SignedData, decrypting the reply's content key.
CLIENT_OPS=4
BOUND="$(python3 -c "print(round($SIGN_PER_SEC / $SERVER_OPS, 1))")"
SHARED_BOUND="$(python3 -c "print(round($SIGN_PER_SEC / ($SERVER_OPS + $CLIENT_OPS), 1))")"
say "RSA-2048 private ops/s on $CORES cores: $SIGN_PER_SEC; bound $BOUND enrollments/s (server only), $SHARED_BOUND with the client's ops on the same cores"

# Warm the key pool (generation is not part of any figure).
say "key pool"
"$BIN/device-fleet" --devices 1 --url http://127.0.0.1:9/unused --key rsa2048 \
    --key-pool "$POOL" --state-root "$WORK/warm" --json > /dev/null 2>&1 || true
python3 - "$POOL" "$(( N_LOAD > N_PLAIN ? N_LOAD : N_PLAIN ))" <<'PY' >&2 || true
import os, sys
have = len([f for f in os.listdir(os.path.join(sys.argv[1], "rsa2048")) if f.endswith(".pem")]) if os.path.isdir(os.path.join(sys.argv[1], "rsa2048")) else 0
print(f"[bench] key pool holds {have} RSA-2048 keys (missing ones are generated by the first point, outside its timing)")
PY

# --- 2. Server-side points with the light client (issue 19) ---------------------------------
CHALLENGE="bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$CHALLENGE" > "$WORK/challenge"
chmod 600 "$WORK/challenge"
# start_lab NAME ARGS...: a fresh `scep-lab serve` in $WORK/NAME; sets LAB_PID, SCEP_URL.
start_lab() {
    local name="$1"; shift
    local ports=("$(free_port)" "$(free_port)" "$(free_port)")
    "$LAB_BIN" serve --data "$WORK/$name" --ports "${ports[@]}" --console-port "$(free_port)" "$@" \
        > "$WORK/$name.out" 2> "$WORK/$name.log" &
    LAB_PID=$!
    SERVER_PIDS+=("$LAB_PID")
    for _ in $(seq 1 300); do grep -q '^serving' "$WORK/$name.out" 2>/dev/null && break; sleep 0.2; done
    grep -q '^serving' "$WORK/$name.out" || { tail "$WORK/$name.log" >&2; say "lab did not start"; exit 1; }
    SCEP_URL="$(awk '/^ndes-proxy/ { print $2 }' "$WORK/$name.out")"
    POLICY_URL="$(awk '/^policy-module/ { print $2 }' "$WORK/$name.out")"
    CA_URL="$(awk '/^ca-mock/ { print $2 }' "$WORK/$name.out")"
    MSCEP_ADMIN_URL="$(awk '/^mscep_admin/ { print $2 }' "$WORK/$name.out")"
}

# Throwaway PostgreSQL for one point, durable (fsync on, synchronous_commit on), as
# scripts/throwaway-postgres.sh does it but with the durability the benchmark's rows claim.
start_pg() {
    local bin
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r | head -1)"
    [ -n "$bin" ] && [ -x "$bin/initdb" ] || return 1
    PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/scep-bench-pg.XXXXXX")"
    mkdir "$PG_DIR/run"
    PG_AS=()
    if [ "$(id -u)" = 0 ]; then
        chown -R postgres: "$PG_DIR"
        PG_AS=(setpriv --reuid=postgres --regid=postgres --init-groups)
    fi
    PG_BIN="$bin"
    "${PG_AS[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C \
        --no-instructions > "$PG_DIR/initdb.log" 2>&1 || return 1
    local port
    port="$(free_port)"
    "${PG_AS[@]}" "$bin/pg_ctl" start -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 -o \
        "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PG_DIR/run -c max_connections=200" \
        > /dev/null || return 1
    printf 'postgres://postgres@127.0.0.1:%s/postgres\n' "$port" > "$WORK/pg-url"
}
stop_pg() {
    "${PG_AS[@]}" "$PG_BIN/pg_ctl" stop -D "$PG_DIR/data" -m fast -w > /dev/null 2>&1 || true
    rm -rf "$PG_DIR"
    PG_DIR=""
}

# load SERVER CONCURRENCY SERVER_PID ARGS...: one light-client point -> a row of $LOAD_RESULTS.
load() {
    local server="$1" c="$2" pid="$3"; shift 3
    local out="$WORK/load-$server-c$c.json"
    say "$server c=$c ($N_LOAD requests, light client)"
    "$BIN/device-fleet" --timeout 120 load --requests "$N_LOAD" --concurrency "$c" \
        --key-pool "$POOL" --server-pid "$pid" --json "$@" > "$out" 2> "$WORK/load-$server-c$c.err" || true
    python3 - "$server" "$c" "$out" >> "$LOAD_RESULTS" <<'PY'
import json, sys
server, conc, path = sys.argv[1:4]
try:
    r = json.load(open(path))
except Exception:
    print(f"[bench]   {server} c={conc}: no report", file=sys.stderr)
    sys.exit()
inv = sum(r["certificates"]["invalid"].values())
opt = lambda v, f: f.format(v) if v is not None else "-"
row = [server, conc, r["requests"], r["certificates"]["valid"], inv, round(r["valid_per_sec"], 1),
       round(r["latency"]["p50_ms"], 1), round(r["latency"]["p90_ms"], 1), round(r["latency"]["p99_ms"], 1),
       opt(r.get("server_cpu_ms_per_valid"), "{:.2f}"), round(r["client_cpu_ms_per_valid"], 2),
       opt(r.get("server_peak_rss_kib") and r["server_peak_rss_kib"] // 1024, "{}")]
print("\t".join(str(x) for x in row))
print("[bench]   " + "\t".join(str(x) for x in row) + (f"  invalid: {r['certificates']['invalid']}" if inv else ""), file=sys.stderr)
PY
}

# full_load SERVER CONCURRENCY: the lab is up; room for N one-time challenges, then the load.
full_load() {
    local server="$1" c="$2" dir="$WORK/$1-c$2"
    curl -fsS -o /dev/null -X PUT "$POLICY_URL/api/v1/settings/challenges" \
        -H "authorization: Bearer $(cat "$dir/secrets/policy-admin.token")" -H 'content-type: application/json' \
        -d "{\"password_max\": $(( N_LOAD > 10000 ? 10000 : N_LOAD )), \"password_validity_minutes\": 60, \"profile_challenge_validity_minutes\": 60, \"admin_validity_days\": 365}"
    load "$server" "$c" "$LAB_PID" --url "$SCEP_URL" --mscep-admin "$MSCEP_ADMIN_URL" \
        --mscep-admin-token-file "$dir/secrets/mscep-admin.token"
}

for c in $( [ "$ONLY" = full ] || echo "$LOAD_CONCURRENCY" ); do
    start_lab "plain-c$c-load" --ca-in-process --plain-challenge-file "$WORK/challenge"
    load plain "$c" "$LAB_PID" --url "$SCEP_URL" --challenge-file "$WORK/challenge"
    stop_server "$LAB_PID"
done
if [ "$ONLY" != plain ]; then
    for c in $LOAD_CONCURRENCY; do
        start_lab "full-c$c"
        full_load full "$c"
        stop_server "$LAB_PID"
    done
    if [ "$ONLY" = full ]; then
        say "BENCH_ONLY=full: PostgreSQL and micromdm rows skipped"
    elif ! "$LAB_BIN" serve --help 2>/dev/null | grep -q -- --postgres-url-file; then
        say "scep-lab serve has no --postgres-url-file (issue 17's serve --config): PostgreSQL rows skipped"
    else
        for c in $LOAD_CONCURRENCY; do
            start_pg || { say "PostgreSQL did not start (Debian's postgresql installed?): row skipped"; continue; }
            start_lab "full-pg-c$c" --postgres-url-file "$WORK/pg-url"
            full_load full-pg "$c"
            stop_server "$LAB_PID"
            stop_pg
        done
    fi
    if command -v scepserver > /dev/null && command -v socat > /dev/null; then
        for c in $LOAD_CONCURRENCY; do
            MICROMDM_DIR="$WORK/micromdm-load-c$c"
            PORT="$(free_port)"
            TRAFFIC_LOG=0 SERVER_DEBUG=0 peers/micromdm-server.sh start "$MICROMDM_DIR" "$PORT" "$CHALLENGE" > /dev/null
            SHELL_PID="$(cat "$MICROMDM_DIR/server.pid")"
            SRV="$(ps -o pid=,comm= --ppid "$SHELL_PID" | awk '$2 == "scepserver" { print $1 }')"
            load micromdm "$c" "$SRV" --url "http://127.0.0.1:$PORT/scep" --challenge-file "$WORK/challenge"
            peers/micromdm-server.sh stop "$MICROMDM_DIR" > /dev/null
            MICROMDM_DIR=""
        done
    else
        say "scepserver or socat not installed (peers/setup.sh): micromdm rows skipped"
    fi
fi

# --- 3. The whole device flow (issue 8's points) ------------------------------------------------
[ "$FLOW" = 1 ] || { CONCURRENCY=""; ONLY=plain; say "BENCH_FLOW=0: whole-device-flow points skipped"; }
if [ "$ONLY" = plain ] || [ -z "$CONCURRENCY" ]; then
    say "BENCH_ONLY=plain: micromdm rows skipped"
elif command -v scepserver > /dev/null && command -v socat > /dev/null; then
    for c in $CONCURRENCY; do
        MICROMDM_DIR="$WORK/micromdm-$c"
        PORT="$(free_port)"
        TRAFFIC_LOG=0 SERVER_DEBUG=0 peers/micromdm-server.sh start "$MICROMDM_DIR" "$PORT" "$CHALLENGE" > /dev/null
        SHELL_PID="$(cat "$MICROMDM_DIR/server.pid")"
        SRV="$(ps -o pid=,comm= --ppid "$SHELL_PID" | awk '$2 == "scepserver" { print $1 }')"
        say "micromdm scepserver c=$c ($N_MICROMDM enrollments)"
        DEVICE_AGENT_CHALLENGE="$CHALLENGE" fleet "micromdm-c$c" "$N_MICROMDM" "$c" --url "http://127.0.0.1:$PORT/scep"
        record micromdm "$c" "micromdm-c$c" "$(cpu_secs "$SRV")" "$(peak_kib "$SRV")"
        peers/micromdm-server.sh stop "$MICROMDM_DIR" > /dev/null
        MICROMDM_DIR=""
    done
else
    say "scepserver or socat not installed (peers/setup.sh): micromdm rows skipped"
fi

# --- 2b. ndes-proxy plain mode ---------------------------------------------------------------
for c in $CONCURRENCY; do
    start_lab "plain-c$c" --ca-in-process --plain-challenge-file "$WORK/challenge"
    say "ndes-proxy plain mode c=$c ($N_PLAIN enrollments)"
    DEVICE_AGENT_CHALLENGE="$CHALLENGE" fleet "plain-c$c" "$N_PLAIN" "$c" --url "$SCEP_URL"
    record ndes-plain "$c" "plain-c$c" "$(cpu_secs "$LAB_PID")" "$(peak_kib "$LAB_PID")"
    stop_server "$LAB_PID"
done

# --- 3. Full pipeline -------------------------------------------------------------------------
full_point() {  # LABEL CONCURRENCY SCEP_URL EXTRA_PID
    local label="$1" c="$2" url="$3" extra="$4"
    local token="$WORK/$label-c$c/secrets/policy-admin.token" root
    root="$(awk '/^root CA SHA-256/ { print $NF }' "$WORK/$label-c$c.out")"
    python3 - "$url" "$root" > "$WORK/$label-c$c-profile.json" <<'PY'
import json, sys
print(json.dumps({"id": "fleet", "name": "Fleet device certificate", "certificate_type": "device",
  "subject_name_format": "CN={{DeviceName}},OU=Fleet,O=scep-lab",
  "key_usage": ["digitalSignature", "keyEncipherment"], "key_algorithm": "rsa", "key_size": 2048,
  "hash_algorithm": "sha256", "validity_days": 365, "renewal_threshold_percent": 20,
  "template": "IPSECIntermediateOffline", "scep_server_urls": [sys.argv[1]],
  "ca_thumbprint": sys.argv[2]}))
PY
    POLICY_ADMIN_TOKEN="$(cat "$token")" "$BIN/policy-module" admin --server "$POLICY_URL" \
        create-profile "$WORK/$label-c$c-profile.json" > /dev/null
    curl -fsS -o /dev/null -X POST "$POLICY_URL/api/v1/groups" -H "authorization: Bearer $(cat "$token")" \
        -H 'content-type: application/json' -d '{"id": "fleet", "name": "Fleet"}'
    POLICY_ADMIN_TOKEN="$(cat "$token")" "$BIN/policy-module" admin --server "$POLICY_URL" \
        assign fleet group fleet > /dev/null
    say "$label c=$c ($N_FULL devices)"
    fleet "$label-c$c" "$N_FULL" "$c" --mdm "$POLICY_URL" --admin-token-file "$token" --group fleet
    local cpu kib
    cpu="$(cpu_secs "$LAB_PID")"; kib="$(peak_kib "$LAB_PID")"
    if [ -n "$extra" ]; then
        cpu="$(python3 -c "print($cpu + $(cpu_secs "$extra"))")"
        kib="$(( kib + $(peak_kib "$extra") ))"
    fi
    record "$label" "$c" "$label-c$c" "$cpu" "$kib"
}
[ "$ONLY" = plain ] && CONCURRENCY_FULL="" || CONCURRENCY_FULL="$CONCURRENCY"
for c in $CONCURRENCY_FULL; do
    start_lab "full-1proc-c$c" --ca-in-process
    full_point full-1proc "$c" "$SCEP_URL" ""
    stop_server "$LAB_PID"
done
for c in $CONCURRENCY_FULL; do
    # ca-mock and policy-module in `scep-lab serve`; the SCEP server is the ndes-proxy binary
    # (its own process), reaching policy-module and ca-mock over HTTP with the lab's tokens.
    start_lab "full-http-c$c"
    d="$WORK/full-http-c$c"
    cat "$d/ca/issuing.crt.pem" "$d/ca/root.crt.pem" > "$d/ndes/chain.pem"
    NDES_PORT="$(free_port)"
    cat > "$d/ndes.toml" <<TOML
listen = "127.0.0.1:$NDES_PORT"
[ra]
signing_cert = "ndes/ra-signing.crt.pem"
signing_key = "ndes/ra-signing.key.pem"
encryption_cert = "ndes/ra-encryption.crt.pem"
encryption_key = "ndes/ra-encryption.key.pem"
chain = "ndes/chain.pem"
[ca]
url = "$CA_URL"
token_file = "secrets/ca-ndes.token"
[policy]
url = "$POLICY_URL"
token_file = "secrets/policy-ndes.token"
TOML
    RUST_LOG=warn "$BIN/ndes-proxy" serve --config "$d/ndes.toml" > "$WORK/ndes-c$c.log" 2>&1 &
    NDES_PID=$!
    SERVER_PIDS+=("$NDES_PID")
    for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$NDES_PORT/healthz" && break; sleep 0.1; done
    full_point full-http "$c" "http://127.0.0.1:$NDES_PORT/certsrv/mscep/mscep.dll" "$NDES_PID"
    stop_server "$NDES_PID"
    stop_server "$LAB_PID"
done

# --- 4. The tables and the chart --------------------------------------------------------------
echo
python3 bench/report.py "$LOAD_RESULTS" /dev/null "$SIGN_PER_SEC" "$CORES" "$SVG" | tee "${BENCH_OUT:-/dev/null}"
[ -s "$RESULTS" ] || exit 0
echo
echo "Whole device flow (device-fleet; issue 8's points):" | tee -a "${BENCH_OUT:-/dev/null}"
python3 - "$RESULTS" "$SIGN_PER_SEC" "$BOUND" "$SHARED_BOUND" "$CORES" <<'PY' | tee -a "${BENCH_OUT:-/dev/null}"
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
sign, bound, shared, cores = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
micromdm = {r[1]: float(r[5]) for r in rows if r[0] == "micromdm"}
best_micromdm = max(micromdm.values(), default=0.0)
print(f"OpenSSL RSA-2048 private ops/s on {cores} cores: {sign:.0f}; 3 per enrollment on the server -> "
      f"bound {bound:.0f} enrollments/s ({shared:.0f}/s with the client's 4 ops on the same cores)")
print()
hdr = ["server", "conc", "devices", "valid", "invalid", "valid/s", "p50 ms", "p99 ms",
       "CPU ms/enr", "peak RSS MiB", "x micromdm", "% of bound"]
print("| " + " | ".join(hdr) + " |")
print("|" + "|".join(["---"] * 2 + ["---:"] * (len(hdr) - 2)) + "|")
for r in rows:
    rate = float(r[5])
    ref = micromdm.get(r[1], 0.0)
    ratio = f"{rate / ref:.1f}" if ref and r[0] != "micromdm" else "-"
    pct = f"{100 * rate / bound:.0f}%" if bound else "-"
    print("| " + " | ".join(r[:10] + [ratio, pct]) + " |")
print()
print(f"x micromdm: against micromdm at the same concurrency (its best: {best_micromdm:.1f} valid/s).")
print("Full-pipeline rows time the whole device flow (registration, check-in, challenge, SCEP, status).")
PY
