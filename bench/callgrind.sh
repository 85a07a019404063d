#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind, for A/B of samgate builds without the
# wall-clock noise of a shared 2-core machine (callgrind counts the same for the same binary and
# requests whatever the neighbours do). Kernel time is not counted: syscalls per request are
# compared with `strace -c` instead (BENCHMARKS.md).
#
# Needs the fixed-answer upstream, the emulator and the database of a held benchmark run:
#   BENCH_ONLY=fast BENCH_HOLD=fast-setup BENCH_WORK=/tmp/b bash bench/run.sh &
#   BENCH_WORK=/tmp/b bash bench/callgrind.sh target/release/samgate /path/to/other/samgate
# Each binary (and the bare hyper proxy, the limit of the stack) is started under callgrind, warmed
# up, its counters zeroed, sent CG_REQUESTS small GETs on CG_CONNECTIONS keep-alive connections,
# then dumped: instructions per request = the dump's total / requests. The dumps stay in
# $BENCH_WORK/callgrind/ for `callgrind_annotate --inclusive=yes`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BENCH_WORK:-/tmp/samgate-bench}
REQUESTS=${CG_REQUESTS:-2000}
CONNECTIONS=${CG_CONNECTIONS:-4}
PORT=${CG_PORT:-18090}
[ -f "$WORK/hold.env" ] || { echo "no $WORK/hold.env: hold a benchmark run first (see above)" >&2; exit 1; }
command -v valgrind >/dev/null || apt-get install -y valgrind >/dev/null
# shellcheck disable=SC1091
. "$WORK/hold.env"
CONTOSO=c0470500-0000-4000-8000-0000000000c0
FAST=$(sed -n "s/^SAMGATE_PARTNER_CENTER_URL='\(.*\)'$/\1/p" "$WORK/samgate-fast.env")
OUT=$WORK/callgrind
mkdir -p "$OUT"

# load URL AUTH N CONNECTIONS: N GETs over keep-alive connections; fails on any status but 200.
load() {
    python3 - "$@" <<'EOF'
import http.client, sys, threading, urllib.parse
url, auth, n, conns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
u = urllib.parse.urlsplit(url)
target = u.path + ("?" + u.query if u.query else "")
failures = []
def run(count):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    for _ in range(count):
        c.request("GET", target, headers={"Authorization": auth})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            failures.append(r.status)
threads = [threading.Thread(target=run, args=(n // conns + (i < n % conns),)) for i in range(conns)]
for t in threads: t.start()
for t in threads: t.join()
if failures:
    sys.exit(f"{len(failures)} answers were not 200: {sorted(set(failures))}")
EOF
}

# measure NAME URL AUTH COMMAND...: Ir per request of COMMAND (a server answering URL).
measure() {
    local name=$1 url=$2 auth=$3 pid total
    shift 3
    rm -f "$OUT/$name".*
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.out" "$@" >"$OUT/$name.log" 2>&1 &
    pid=$!
    for _ in $(seq 600); do
        curl -s -o /dev/null -H "Authorization: $auth" "$url" && break
        kill -0 "$pid" 2>/dev/null || { echo "$name exited; see $OUT/$name.log" >&2; return 1; }
        sleep 0.2
    done
    load "$url" "$auth" 300 "$CONNECTIONS"
    sleep 1
    callgrind_control -z "$pid" >/dev/null 2>&1
    load "$url" "$auth" "$REQUESTS" "$CONNECTIONS"
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid"; wait "$pid" 2>/dev/null || true
    total=$(grep -h '^summary:\|^totals:' "$(ls "$OUT/$name".out.* | head -1)" | head -1 | awk '{print $2}')
    printf '%-28s %12d instructions per request (%d requests, %s)\n' "$name" $((total / REQUESTS)) "$REQUESTS" "$(ls "$OUT/$name".out.* | head -1)"
}

i=0
for bin in "$@"; do
    i=$((i + 1))
    sed -e "s#^SAMGATE_LISTEN=.*#SAMGATE_LISTEN='127.0.0.1:$PORT'#" \
        -e "s#^SAMGATE_PUBLIC_URL=.*#SAMGATE_PUBLIC_URL='http://127.0.0.1:$PORT/'#" \
        "$WORK/samgate-fast.env" >"$OUT/env-$i"
    SAMGATE_ENV_FILE=$OUT/env-$i measure "samgate-$i" \
        "http://127.0.0.1:$PORT/api/v1/partners/$CONTOSO/partner-center/v1/customers?size=1" "Bearer $KEY" \
        "$bin" serve
done
BENCH_TOKEN=$TOKEN measure bare "http://127.0.0.1:$PORT/v1/customers?size=1" "Bearer $TOKEN" \
    "$ROOT/target/release/samgate-bench" bare-proxy --port "$PORT" --upstream "$FAST"
