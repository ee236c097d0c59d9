#!/usr/bin/env bash
# Where an enrollment's server work goes (issue 19), with the light client (`device-fleet
# load`) against `scep-lab serve`; figures that hold on a busy machine:
#   1. durable commits per enrollment: fsync/fdatasync calls of the server (strace -c) over N
#      enrollments, plain mode and full pipeline (SQLite; every store is in the one process);
#   2. instructions per enrollment (valgrind callgrind, collection on only during the load)
#      and the share per shared object, plain mode;
#   3. a perf profile of plain mode at concurrency 16 (perf record -g), by shared object and
#      by symbol.
#   bench/profile.sh [OUT_DIR]     # knobs: PROFILE_N (200), PROFILE_CALLGRIND_N (40)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-$(mktemp -d)}"
mkdir -p "$OUT"
N="${PROFILE_N:-200}"
NCG="${PROFILE_CALLGRIND_N:-40}"
BIN="${CARGO_TARGET_DIR:-target}/release"
LAB_BIN="${BENCH_LAB:-$BIN/scep-lab}"
POOL="${CARGO_TARGET_DIR:-target}/device-agent-bench/key-pool"
WORK="$(mktemp -d)"
LAB_PID=""
trap '[ -n "$LAB_PID" ] && kill -INT "$LAB_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
say() { echo "[profile] $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
printf 'profile-%s\n' "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" > "$WORK/challenge"
chmod 600 "$WORK/challenge"

# start NAME WRAPPER... -- ARGS...: `scep-lab serve` (under WRAPPER, if any) in $WORK/NAME.
start() {
    local name="$1"; shift
    local wrap=()
    while [ "$1" != -- ]; do wrap+=("$1"); shift; done
    shift
    rm -f "$WORK/$name.out"
    "${wrap[@]}" "$LAB_BIN" serve --data "$WORK/$name" --ports "$(free_port)" "$(free_port)" "$(free_port)" \
        --console-port "$(free_port)" "$@" > "$WORK/$name.out" 2> "$WORK/$name.log" &
    LAB_PID=$!
    for _ in $(seq 1 1500); do grep -q '^serving' "$WORK/$name.out" 2>/dev/null && break; sleep 0.2; done
    grep -q '^serving' "$WORK/$name.out" || { tail "$WORK/$name.log" >&2; exit 1; }
    SCEP_URL="$(awk '/^ndes-proxy/ { print $2 }' "$WORK/$name.out")"
    POLICY_URL="$(awk '/^policy-module/ { print $2 }' "$WORK/$name.out")"
    MSCEP_ADMIN_URL="$(awk '/^mscep_admin/ { print $2 }' "$WORK/$name.out")"
}
stop() { kill -INT "$LAB_PID" 2>/dev/null || true; wait "$LAB_PID" 2>/dev/null || true; LAB_PID=""; }
load() {  # N CONCURRENCY ARGS...
    local n="$1" c="$2"; shift 2
    "$BIN/device-fleet" --timeout 300 load --requests "$n" --concurrency "$c" --key-pool "$POOL" "$@"
}
plain_args=(--challenge-file "$WORK/challenge")
full_args() {
    curl -fsS -o /dev/null -X PUT "$POLICY_URL/api/v1/settings/challenges" \
        -H "authorization: Bearer $(cat "$WORK/$1/secrets/policy-admin.token")" -H 'content-type: application/json' \
        -d '{"password_max": 10000, "password_validity_minutes": 60, "profile_challenge_validity_minutes": 60, "admin_validity_days": 365}'
    FULL=(--mscep-admin "$MSCEP_ADMIN_URL" --mscep-admin-token-file "$WORK/$1/secrets/mscep-admin.token")
}

# 1. Durable commits per enrollment.
for mode in ${PROFILE_SYNCS-plain full}; do
    if [ "$mode" = plain ]; then start syncs-plain -- --ca-in-process --plain-challenge-file "$WORK/challenge"; extra=("${plain_args[@]}")
    else start syncs-full --; full_args syncs-full; extra=("${FULL[@]}"); fi
    # Warm-up (first-use work out of the count) with keys of its own: a key the server saw
    # already means a transactionID it saw already.
    "$BIN/device-fleet" load --requests 5 --concurrency 1 --key-pool "$WORK/warm-pool" --url "$SCEP_URL" "${extra[@]}" > /dev/null
    if [ "$mode" = full ]; then full_args syncs-full; extra=("${FULL[@]}"); fi
    # Counted over the whole run: in the full pipeline the mscep_admin fetches (one challenge
    # minted and committed per enrollment) are part of each enrollment's commits.
    strace -q -f -c -e trace=fsync,fdatasync -o "$WORK/strace-$mode" -p "$LAB_PID" &
    ST=$!
    sleep 1
    load "$N" 16 --url "$SCEP_URL" "${extra[@]}" > "$OUT/syncs-$mode.txt"
    kill -INT "$ST"; wait "$ST" 2>/dev/null || true
    syncs="$(awk '$NF ~ /^f(data)?sync$/ { s += $4 } END { print s + 0 }' "$WORK/strace-$mode")"
    say "$mode: $syncs fsync/fdatasync calls over $N enrollments ($(python3 -c "print(round($syncs / $N, 2))") per enrollment)"
    cp "$WORK/strace-$mode" "$OUT/strace-$mode.txt"
    stop
done

# 2. Instructions per enrollment (callgrind), plain mode, c=1.
if command -v valgrind > /dev/null; then
    start cg-init -- --ca-in-process --plain-challenge-file "$WORK/challenge"; stop   # keys made natively
    start cg-init valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/callgrind.out" -- \
        --ca-in-process --plain-challenge-file "$WORK/challenge"
    "$BIN/device-fleet" load --requests 3 --concurrency 1 --key-pool "$WORK/warm-pool" --url "$SCEP_URL" "${plain_args[@]}" > /dev/null
    callgrind_control -i on "$LAB_PID" > /dev/null
    load "$NCG" 1 --url "$SCEP_URL" "${plain_args[@]}" > "$OUT/callgrind-load.txt"
    callgrind_control -i off "$LAB_PID" > /dev/null
    stop
    callgrind_annotate --inclusive=no "$OUT/callgrind.out" > "$OUT/callgrind-symbols.txt" 2>/dev/null || true
    python3 - "$OUT/callgrind-symbols.txt" "$NCG" <<'PY' | tee "$OUT/callgrind-summary.txt" >&2
import re, sys
path, n = sys.argv[1], int(sys.argv[2])
total, by_obj = 0, {}
for line in open(path):
    m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S+):(\S+)", line)
    if m and "PROGRAM TOTALS" not in line:
        ir = int(m.group(1).replace(",", ""))
        obj = m.group(3) if m.group(3).startswith("[") else m.group(2)
        lib = re.search(r"\[([^\]]+)\]", line)
        key = lib.group(1).rsplit("/", 1)[-1] if lib else "?"
        by_obj[key] = by_obj.get(key, 0) + ir
    m = re.match(r"\s*([\d,]+)\s+\(100.0%\)\s+PROGRAM TOTALS", line)
    if m:
        total = int(m.group(1).replace(",", ""))
print(f"[profile] callgrind: {total:,} instructions over {n} enrollments = {total // max(n, 1):,} per enrollment")
for k, v in sorted(by_obj.items(), key=lambda kv: -kv[1])[:8]:
    print(f"[profile]   {k}: {100 * v / max(total, 1):.1f}%")
PY
fi

# 3. perf, plain mode, c=16.
if command -v perf > /dev/null; then
    start perf -- --ca-in-process --plain-challenge-file "$WORK/challenge"
    "$BIN/device-fleet" load --requests 20 --concurrency 4 --key-pool "$WORK/warm-pool" --url "$SCEP_URL" "${plain_args[@]}" > /dev/null
    perf record -F 499 -g -o "$OUT/perf.data" -p "$LAB_PID" 2> /dev/null &
    PR=$!
    sleep 1
    load "$N" 16 --url "$SCEP_URL" "${plain_args[@]}" > "$OUT/perf-load.txt"
    kill -INT "$PR"; wait "$PR" 2>/dev/null || true
    stop
    perf report -i "$OUT/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12 | tee "$OUT/perf-dso.txt" >&2
    perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -30 > "$OUT/perf-symbols.txt"
fi
say "results in $OUT"
