#!/usr/bin/env bash
# samgate benchmarks, side by side in one run (see BENCHMARKS.md).
#
# Starts a private PostgreSQL, the Microsoft emulator (release), samgate (release, `serve`) and
# nginx (a plain reverse proxy to the same emulator that injects a fixed bearer token), completes
# one partner consent over HTTP, creates an API key, then measures:
#   1 proxy small GET: direct vs nginx vs samgate at the same concurrency, and at half saturation
#  1b the same against a fixed-answer upstream (samgate-bench upstream), with a bare hyper proxy,
#     and samgate to a TLS copy of that upstream over HTTP/2 (ALPN h2, as Microsoft's hosts speak)
#   2 database statements per proxied request (pg_stat_statements / pg_stat_database)
#   3 1 MiB and 20 MiB responses: throughput and samgate's peak RSS
#   4 refresh storm: 1,000 concurrent calls right after the token is due
#   5 many partners: 100,000 seeded grants, keep-alive sweeps, claim query
#   6 admin partners list at 100,000 partners
#   7 vault seal/open
#   8 idle footprint, 10,000 cached access tokens, soak
#   9 customer directory: sync of 5,000 customers (time, RSS), DB statements on the customer route
# Results: $BENCH_WORK/results.json and $BENCH_WORK/results.md (also printed at the end).
#
# Knobs (environment): BENCH_WORK (/tmp/samgate-bench), BENCH_DURATION (15 s per load run),
# BENCH_CONCURRENCY (32), BENCH_PARTNERS (100000), BENCH_EMULATED (10000), BENCH_SOAK_SECS (60),
# BENCH_SOAK_RATE (1000), BENCH_SAMGATE_PORT/BENCH_EMU_PORT/BENCH_NGINX_PORT (18080/18081/18082),
# BENCH_SKIP_BUILD=1, BENCH_HOLD=setup|fast-setup|fast|end (keep everything running for profiling;
# `fast-setup` holds once the fixed-answer upstream and its proxies are up, `fast` after their runs),
# BENCH_ONLY=proxy (stop after the proxy comparisons, 1 and 1b) or fast (1b only, then stop),
# BENCH_FAST_PORT/BENCH_BARE_PORT/BENCH_SAMGATE_FAST_PORT/BENCH_NGINX_FAST_PORT (18083-18086),
# BENCH_BASELINE_BIN (an earlier samgate binary measured beside this one in 1b; port BENCH_SAMGATE_BASE_PORT, 18087),
# BENCH_H2_PORT/BENCH_SAMGATE_H2_PORT (18088/18089: the TLS upstream and the samgate speaking HTTP/2 to it).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
WORK=${BENCH_WORK:-/tmp/samgate-bench}
SG_PORT=${BENCH_SAMGATE_PORT:-18080}
EMU_PORT=${BENCH_EMU_PORT:-18081}
NGINX_PORT=${BENCH_NGINX_PORT:-18082}
DURATION=${BENCH_DURATION:-15}
CONC=${BENCH_CONCURRENCY:-32}
PARTNERS=${BENCH_PARTNERS:-100000}
EMULATED=${BENCH_EMULATED:-10000}
SOAK=${BENCH_SOAK_SECS:-60}
SG=http://127.0.0.1:$SG_PORT
EMU=http://127.0.0.1:$EMU_PORT
NGX=http://127.0.0.1:$NGINX_PORT
CLIENT_ID=5a3e6a7e-0000-4c9a-9d3e-00000000c0de
CLIENT_SECRET=demo-cpv-secret-value
CONTOSO=c0470500-0000-4000-8000-0000000000c0
CONTOSO_ADMIN=admin@contosopartners.onmicrosoft.com
PASSWORD='Passw0rd!demo'
STARTED=$(date +%s)

log() { printf '[%s +%4ss] %s\n' "$(date +%T)" "$(($(date +%s) - STARTED))" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# 0. Tools
# ---------------------------------------------------------------------------------------------
need_apt=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v jq >/dev/null || need_apt+=(jq)
command -v curl >/dev/null || need_apt+=(curl)
[ -x /usr/bin/time ] || need_apt+=(time)
command -v psql >/dev/null || need_apt+=(postgresql-client)
ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || command -v pg_ctl >/dev/null || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing ${need_apt[*]}"
    apt-get install -y "${need_apt[@]}" >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get install -y "${need_apt[@]}" >/dev/null; }
fi
python3 -c 'import requests' 2>/dev/null || pip install --quiet requests
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
    PGBIN=$(pg_config --bindir)
else
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
[ -x "$PGBIN/initdb" ] || die "no initdb found (install postgresql)"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---------------------------------------------------------------------------------------------
# Processes we start, and their clean-up (only these pids, never by name)
# ---------------------------------------------------------------------------------------------
SG_PID='' EMU_PID='' NGINX_PID='' SG_BASE_PID='' FAST_PID='' BARE_PID='' SG_FAST_PID='' H2_PID='' SG_H2_PID='' SAMPLER_PID='' SCRAPER_PID='' HOLD_PID=''
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_stop() { [ -f "$WORK/pg/data/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null 2>&1 || true; }
cleanup() {
    set +e
    for pid in $HOLD_PID $SAMPLER_PID $SCRAPER_PID $SG_BASE_PID $SG_H2_PID $H2_PID $SG_FAST_PID $BARE_PID $FAST_PID $NGINX_PID $SG_PID $EMU_PID; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    pg_stop
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# A previous run's leftovers (only our own work directory).
if [ -d "$WORK" ]; then
    for f in "$WORK"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
    pg_stop
    rm -rf "$WORK"
fi
mkdir -p "$WORK" && chmod 755 "$WORK"
RESULTS=$WORK/results.json
echo '{}' >"$RESULTS"
# put KEY JSON: records a result.
put() { jq --arg k "$1" --argjson v "$2" '.[$k] = $v' "$RESULTS" >"$RESULTS.tmp" && mv "$RESULTS.tmp" "$RESULTS"; }
rss_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

put machine "$(jq -n --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" \
    --arg nproc "$(nproc)" --arg kernel "$(uname -r)" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --arg mem "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)" \
    --arg nginx "$($NGINX -v 2>&1 | sed 's/.*\///')" --arg wrk "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)" \
    --arg pg "$("$PGBIN/postgres" --version | awk '{print $3}')" --arg rustc "$(rustc --version | cut -d' ' -f2)" \
    '{cpu:$cpu, nproc:$nproc, kernel:$kernel, loadavg_at_start:$load, mem:$mem, nginx:$nginx, wrk:$wrk, postgres:$pg, rustc:$rustc}')"

# ---------------------------------------------------------------------------------------------
# 1. One release build
# ---------------------------------------------------------------------------------------------
TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
BIN=$TARGET/release
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "cargo build --release -p samgate -p ms-emulator -p samgate-bench"
    t0=$(date +%s)
    (cd "$ROOT" && cargo build --release -p samgate -p ms-emulator -p samgate-bench)
    put build_secs "$(($(date +%s) - t0))"
fi
for b in samgate ms-emulator samgate-bench; do [ -x "$BIN/$b" ] || die "$BIN/$b missing"; done

# ---------------------------------------------------------------------------------------------
# 2. Private PostgreSQL (like src/local_pg.rs: initdb/pg_ctl, Unix socket only, as postgres when
#    root), with pg_stat_statements for per-statement counts.
# ---------------------------------------------------------------------------------------------
log "starting a private PostgreSQL in $WORK/pg"
mkdir -p "$WORK/pg"
[ "$(id -u)" = 0 ] && chown postgres "$WORK/pg"
as_pg "$PGBIN/initdb" -D "$WORK/pg/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C --no-instructions >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w -t 60 \
    -o "-k $WORK/pg -c listen_addresses='' -c max_connections=300 -c shared_buffers=128MB -c shared_preload_libraries=pg_stat_statements" \
    start >/dev/null
PSQL=(psql -h "$WORK/pg" -U postgres -X -q -At -v ON_ERROR_STOP=1)
"${PSQL[@]}" -d postgres -c 'CREATE DATABASE samgate'
"${PSQL[@]}" -d samgate -c 'CREATE EXTENSION pg_stat_statements'
sql() { "${PSQL[@]}" -d samgate -c "$1"; }
DATABASE_URL="postgres://postgres@localhost/samgate?host=$WORK/pg"

# ---------------------------------------------------------------------------------------------
# 3. The emulator (release, its own process, fixed port, control API)
# ---------------------------------------------------------------------------------------------
log "starting ms-emulator on $EMU"
"$BIN/ms-emulator" --port "$EMU_PORT" --control --demo-redirect-uri "$SG/oauth/callback" \
    >"$WORK/emulator.out" 2>"$WORK/emulator.log" &
EMU_PID=$!
echo "$EMU_PID" >"$WORK/emulator.pid"
for _ in $(seq 100); do curl -sf "$EMU/_emulator/clock" >/dev/null && break; sleep 0.1; done
emu_settings() { curl -sf -X POST -H 'content-type: application/json' -d "$1" "$EMU/_emulator/settings" >/dev/null; }
# Tokens minted from now on live 5 min 20 s: samgate treats a token as due 5 min before expiry,
# so the first token becomes due 20 s after the warm-up call (scenario 4).
emu_settings '{"access_token_lifetime_secs":320}'

# ---------------------------------------------------------------------------------------------
# 4. samgate serve (release) with env pointing at the emulator
# ---------------------------------------------------------------------------------------------
cd "$WORK" # no stray .env from the checkout
KEKS="1:$("$BIN/samgate" keys generate)"
cat >"$WORK/samgate.env" <<EOF
DATABASE_URL='$DATABASE_URL'
SAMGATE_LISTEN='127.0.0.1:$SG_PORT'
SAMGATE_PUBLIC_URL='$SG/'
SAMGATE_AUTHORITY_URL='$EMU'
SAMGATE_PARTNER_CENTER_URL='$EMU'
SAMGATE_GRAPH_URL='$EMU/graph'
SAMGATE_CLIENT_ID='$CLIENT_ID'
SAMGATE_CLIENT_SECRET='$CLIENT_SECRET'
SAMGATE_KEKS='$KEKS'
SAMGATE_PROXY_CLIENT_CONCURRENCY='4096'
SAMGATE_PROXY_PARTNER_CONCURRENCY='4096'
SAMGATE_KEEPALIVE_INTERVAL_SECS='3600'
SAMGATE_KEEPALIVE_JITTER_MS='0'
EOF
export SAMGATE_ENV_FILE=$WORK/samgate.env
samgate() { "$BIN/samgate" "$@"; }

log "starting samgate serve on $SG"
"$BIN/samgate" serve >"$WORK/samgate.out" 2>"$WORK/samgate.log" &
SG_PID=$!
echo "$SG_PID" >"$WORK/samgate.pid"
for _ in $(seq 300); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$SG/readyz")" = 200 ] && break; sleep 0.1; done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$SG/readyz")" = 200 ] || die "samgate not ready (see $WORK/samgate.log)"
sleep 2
put idle_rss_kb "$(rss_kb "$SG_PID" VmRSS)"
log "samgate idle RSS $(rss_kb "$SG_PID" VmRSS) kB"

# ---------------------------------------------------------------------------------------------
# 5. One partner consent over HTTP, an API client and key
# ---------------------------------------------------------------------------------------------
LINK=$(samgate invitations create --partner-name "Contoso Partners" --login-hint "$CONTOSO_ADMIN" | awk '$1 == "link" {print $2}')
python3 "$BENCH/consent.py" "$LINK" "$CONTOSO_ADMIN" "$PASSWORD" >&2
[ "$(sql "SELECT status FROM partners WHERE tenant_id = '$CONTOSO'")" = healthy ] || die "consent did not make the partner healthy"
samgate clients create --name bench --all-partners >/dev/null
KEY=$(samgate clients keys create --client bench 2>/dev/null | grep '^sgk_' | tail -1)
[ -n "$KEY" ] || die "no API key"
export BENCH_API_KEY=$KEY
PC="$SG/api/v1/partners/$CONTOSO/partner-center"
SMALL_SG="$PC/v1/customers?size=1"
SMALL_EMU="$EMU/v1/customers?size=1"
SMALL_NGX="$NGX/v1/customers?size=1"

# ---------------------------------------------------------------------------------------------
# 6. Scenario 4, part 1: warm the token (lifetime 320 s), then make new tokens long-lived
# ---------------------------------------------------------------------------------------------
WARM_AT=$(date +%s)
CUSTOMER=$(curl -sf -H "Authorization: Bearer $KEY" "$SMALL_SG" | jq -r '.items[0].id')
[ -n "$CUSTOMER" ] && [ "$CUSTOMER" != null ] || die "first proxied call failed"
emu_settings '{"access_token_lifetime_secs":86400}'

# Scenario 7 (vault) while the token ages.
log "vault seal/open timing loop"
put vault "$(SAMGATE_KEKS=$KEKS "$BIN/samgate-bench" vault)"

# ---------------------------------------------------------------------------------------------
# 7. Scenario 4: refresh storm, 1,000 concurrent calls once samgate considers the token due
# ---------------------------------------------------------------------------------------------
while [ $(($(date +%s) - WARM_AT)) -lt 26 ]; do sleep 1; done
curl -sf -X DELETE "$EMU/_emulator/counters" >/dev/null
curl -sf -X DELETE "$EMU/_emulator/requests" >/dev/null
log "refresh storm: 1000 concurrent calls"
STORM=$("$BIN/samgate-bench" storm --url "$SMALL_SG" --requests 1000)
TOKEN_CALLS=$(curl -sf "$EMU/_emulator/counters" | jq '[.token[] | select(.grant_type == "refresh_token") | .count] | add // 0')
UPSTREAM_CALLS=$(curl -sf "$EMU/_emulator/counters" | jq '[.routes | to_entries[] | select(.key | startswith("/v1/customers")) | .value] | add // 0')
put storm "$(jq -n --argjson s "$STORM" --argjson t "$TOKEN_CALLS" --argjson u "$UPSTREAM_CALLS" '$s + {token_calls: $t, upstream_calls: $u}')"
log "storm: $STORM, token calls $TOKEN_CALLS"

# The token samgate now holds (minted during the storm, 24 h): nginx injects the same one.
TOKEN=$(curl -sf "$EMU/_emulator/requests" | jq -r '[.[] | select(.path | startswith("/v1/"))] | last | .headers[] | select(.[0] == "authorization") | .[1]' | sed 's/^Bearer //')
TOKEN_TTL=$(python3 -c 'import base64,json,sys,time; p=sys.argv[1].split(".")[1]; p+="="*(-len(p)%4); print(int(json.loads(base64.urlsafe_b64decode(p))["exp"]-time.time()))' "$TOKEN")
[ "$TOKEN_TTL" -gt 3600 ] || die "captured token lives only ${TOKEN_TTL}s"

# ---------------------------------------------------------------------------------------------
# 8. nginx, injecting that token
# ---------------------------------------------------------------------------------------------
mkdir -p "$WORK/nginx/tmp"
sed -e "s#@WORK@#$WORK#g" -e "s#@NGINX_PORT@#$NGINX_PORT#g" -e "s#@EMU_PORT@#$EMU_PORT#g" -e "s#@TOKEN@#$TOKEN#g" \
    -e "s#@FAST_PORT@#${BENCH_FAST_PORT:-18083}#g" -e "s#@NGINX_FAST_PORT@#${BENCH_NGINX_FAST_PORT:-18086}#g" \
    "$BENCH/nginx.conf.tmpl" >"$WORK/nginx/nginx.conf"
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" 2>"$WORK/nginx/stderr.log" &
NGINX_PID=$!
for _ in $(seq 100); do curl -s -o /dev/null "$NGX/" && break; sleep 0.1; done
for url in "$SMALL_NGX" ; do [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ] || die "nginx: $url"; done
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$SMALL_EMU")" = 200 ] || die "direct call refused"

# CPU time (user + system, clock ticks) of a process and its children's threads, e.g. nginx's
# workers (children found through /proc, never by name).
cpu_ticks() {
    local total=0 pid
    for pid in "$@"; do
        [ -r "/proc/$pid/stat" ] || continue
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$total"
}
nginx_pids() { echo "$NGINX_PID" $(cat /proc/"$NGINX_PID"/task/*/children 2>/dev/null); }
TICK_US=$((1000000 / $(getconf CLK_TCK)))
hold() { # keep everything running for manual profiling (BENCH_HOLD=setup|end)
    { echo "SG_PID=$SG_PID EMU_PID=$EMU_PID NGINX_PID=$NGINX_PID SG_FAST_PID=$SG_FAST_PID BARE_PID=$BARE_PID FAST_PID=$FAST_PID SG_H2_PID=$SG_H2_PID H2_PID=$H2_PID"; echo "KEY=$KEY"; echo "TOKEN=$TOKEN"; echo "PC=$PC"; echo "CUSTOMER=$CUSTOMER"; } >"$WORK/hold.env"
    log "holding (BENCH_HOLD=$BENCH_HOLD): see $WORK/hold.env; kill $$ to stop"
    sleep infinity &
    HOLD_PID=$!
    wait "$HOLD_PID"
}
# wrk_json TARGET_URL AUTH THREADS CONNECTIONS SECONDS [RATE_PER_THREAD]: one load run -> JSON,
# with the CPU time samgate, nginx and the emulator spent per request during the run.
wrk_json() {
    local out s0 n0 e0
    curl -sf -X DELETE "$EMU/_emulator/requests" >/dev/null # the emulator records every request
    s0=$(cpu_ticks "$SG_PID"); n0=$(cpu_ticks $(nginx_pids)); e0=$(cpu_ticks "$EMU_PID")
    out=$(BENCH_AUTH=$2 BENCH_RATE_PER_THREAD=${6:-} wrk -t"$3" -c"$4" -d"$5"s --timeout 10s --latency \
        -s "$BENCH/wrk/report.lua" "$1")
    echo "$out" >>"$WORK/wrk.log"
    echo "$out" | sed -n 's/^JSON //p' | jq -c --argjson s "$(($(cpu_ticks "$SG_PID") - s0))" \
        --argjson n "$(($(cpu_ticks $(nginx_pids)) - n0))" --argjson e "$(($(cpu_ticks "$EMU_PID") - e0))" --argjson t "$TICK_US" \
        '. + {cpu_us_per_req: {samgate: ($s * $t / .requests | floor), nginx: ($n * $t / .requests | floor), emulator: ($e * $t / .requests | floor)}}'
}
auth_for() {
    case $1 in
        direct) echo "Bearer $TOKEN" ;;
        nginx) echo "" ;;
        samgate) echo "Bearer $KEY" ;;
    esac
}
url_for() { # TARGET PATH_AND_QUERY (Partner Center path without the leading slash)
    case $1 in
        direct) echo "$EMU/$2" ;;
        nginx) echo "$NGX/$2" ;;
        samgate) echo "$PC/$2" ;;
    esac
}

[ "${BENCH_HOLD:-}" = setup ] && hold

# ---------------------------------------------------------------------------------------------
# 9. Scenarios 1 and 2: small GET at saturation, two interleaved rounds; the second samgate run
#    is wrapped in database statistics.
# ---------------------------------------------------------------------------------------------
db_snapshot() {
    sql "SELECT json_build_object('xact_commit', xact_commit, 'xact_rollback', xact_rollback, 'tup_returned', tup_returned,
                                  'tup_fetched', tup_fetched, 'tup_inserted', tup_inserted, 'tup_updated', tup_updated)
         FROM pg_stat_database WHERE datname = 'samgate'"
}
HALF_SECS=$((DURATION * 2 / 3))
# BENCH_ONLY=fast: only the fixed-upstream comparisons (scenario 1b), for quick A/B and profiling.
[ "${BENCH_ONLY:-}" = fast ] || for round in 1 2; do
    for target in direct nginx samgate; do
        if [ "$target" = samgate ] && [ "$round" = 2 ]; then
            sleep 1
            sql "SELECT pg_stat_statements_reset()" >/dev/null
            BEFORE=$(db_snapshot)
            CALLS_BEFORE=$(sql "SELECT count(*) FROM proxy_calls")
        fi
        log "small GET, $target, round $round: wrk -t2 -c$CONC -d${DURATION}s"
        R=$(wrk_json "$(url_for $target 'v1/customers?size=1')" "$(auth_for $target)" 2 "$CONC" "$DURATION")
        put "small_${target}_r$round" "$R"
        log "  $(echo "$R" | jq -c '{rps, p50_ms, p99_ms, err_status, cpu_us_per_req}')"
        if [ "$target" = samgate ] && [ "$round" = 2 ]; then
            sleep 1.5 # the call-record writer gathers for up to 200 ms
            AFTER=$(db_snapshot)
            PROXIED=$(($(sql "SELECT count(*) FROM proxy_calls") - CALLS_BEFORE))
            STATEMENTS=$(sql "SELECT coalesce(json_agg(json_build_object('calls', calls, 'rows', rows, 'ms', round(total_exec_time::numeric, 1),
                                         'query', left(regexp_replace(query, '\s+', ' ', 'g'), 140)) ORDER BY calls DESC), '[]')
                              FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
                              WHERE d.datname = 'samgate' AND query !~* 'pg_stat' AND query !~* '^SELECT count\(\*\) FROM proxy_calls'")
            put db_per_request "$(jq -n --argjson b "$BEFORE" --argjson a "$AFTER" --argjson n "$PROXIED" --argjson s "$STATEMENTS" '
                {proxied_requests: $n,
                 xact_commit: ($a.xact_commit - $b.xact_commit), tup_returned: ($a.tup_returned - $b.tup_returned),
                 tup_inserted: ($a.tup_inserted - $b.tup_inserted),
                 statements: $s,
                 record_batches: ([$s[] | select(.query | test("INSERT INTO proxy_calls")) | .calls] | add // 0),
                 batch_writer_statements: ([$s[] | select(.query | test("INSERT INTO proxy_calls|^UPDATE grants SET last_used_at|^(BEGIN|COMMIT)$")) | .calls] | add // 0),
                 other_statements: ([$s[] | select(.query | test("INSERT INTO proxy_calls|^UPDATE grants SET last_used_at|^(BEGIN|COMMIT)$") | not) | .calls] | add // 0)}
                | . + {other_statements_per_request: (.other_statements / .proxied_requests),
                       xact_commit_per_request: (.xact_commit / .proxied_requests),
                       tup_returned_per_request: (.tup_returned / .proxied_requests)}')"
            log "  DB: $(jq -c '.db_per_request | {proxied_requests, xact_commit, record_batches, other_statements}' "$RESULTS")"
        fi
    done
done
put rss_after_small_kb "$(rss_kb "$SG_PID" VmRSS)"

# Saturation rate = the better samgate round; half of it is the "half saturation" rate.
SAT=$(jq '[.small_samgate_r1.rps, .small_samgate_r2.rps] | max // 0' "$RESULTS")
HALF=$(jq -n --argjson s "$SAT" '($s / 2) | floor')
PER_THREAD=$(jq -n --argjson h "$HALF" '$h / 2')
[ "${BENCH_ONLY:-}" = fast ] || for round in 1 2; do
    for target in direct nginx samgate; do
        log "small GET at half saturation ($HALF req/s), $target, round $round: wrk -t2 -c16 -d${HALF_SECS}s, paced"
        R=$(wrk_json "$(url_for $target 'v1/customers?size=1')" "$(auth_for $target)" 2 16 "$HALF_SECS" "$PER_THREAD")
        put "half_${target}_r$round" "$R"
        log "  $(echo "$R" | jq -c '{rps, p50_ms, p99_ms, err_status, cpu_us_per_req}')"
    done
done

# ---------------------------------------------------------------------------------------------
# 9b. Scenario 1 against a fixed-answer upstream (samgate-bench upstream), so the proxy, not the
#     emulator, decides throughput: direct, nginx, the bare hyper proxy (samgate-bench bare-proxy:
#     the limit of samgate's stack) and a second samgate process whose Partner Center base URL is
#     that upstream (tokens still from the emulator). samgate-h2: a third samgate whose Partner
#     Center base URL is the same fixed answer over HTTPS (samgate-bench upstream --tls-ca-out,
#     ALPN h2 then http/1.1, throwaway CA trusted through SAMGATE_EXTRA_CA_FILE), so its upstream
#     leg is TLS + HTTP/2 as against Microsoft. Same wrk runs, two rounds, A/B order alternated;
#     CPU per request of the proxy process(es) and of the upstream.
# ---------------------------------------------------------------------------------------------
FAST_PORT=${BENCH_FAST_PORT:-18083}
BARE_PORT=${BENCH_BARE_PORT:-18084}
SG_FAST_PORT=${BENCH_SAMGATE_FAST_PORT:-18085}
NGINX_FAST_PORT=${BENCH_NGINX_FAST_PORT:-18086}
H2_PORT=${BENCH_H2_PORT:-18088}
SG_H2_PORT=${BENCH_SAMGATE_H2_PORT:-18089}
FAST=http://127.0.0.1:$FAST_PORT
"$BIN/samgate-bench" upstream --port "$FAST_PORT" 2>"$WORK/upstream.log" &
FAST_PID=$!
# The TLS upstream writes its throwaway CA before it listens; it prints the requests it answered
# per HTTP version on SIGTERM (upstream-h2.log).
"$BIN/samgate-bench" upstream --port "$H2_PORT" --tls-ca-out "$WORK/upstream-h2-ca.pem" 2>"$WORK/upstream-h2.log" &
H2_PID=$!
BENCH_TOKEN=$TOKEN "$BIN/samgate-bench" bare-proxy --port "$BARE_PORT" --upstream "$FAST" 2>"$WORK/bare.log" &
BARE_PID=$!
# proxy_env FILE PORT PARTNER_CENTER_URL [EXTRA_CA_FILE]: samgate.env for another samgate process
# on PORT whose Partner Center is PARTNER_CENTER_URL (same database, KEK and emulator).
proxy_env() {
    { grep -Ev '^(SAMGATE_LISTEN|SAMGATE_PUBLIC_URL|SAMGATE_PARTNER_CENTER_URL|SAMGATE_EXTRA_CA_FILE)=' "$WORK/samgate.env"
      echo "SAMGATE_LISTEN='127.0.0.1:$2'"
      echo "SAMGATE_PUBLIC_URL='http://127.0.0.1:$2/'"
      echo "SAMGATE_PARTNER_CENTER_URL='$3'"
      [ -z "${4:-}" ] || echo "SAMGATE_EXTRA_CA_FILE='$4'"
    } >"$1"
}
proxy_env "$WORK/samgate-fast.env" "$SG_FAST_PORT" "$FAST"
SAMGATE_ENV_FILE=$WORK/samgate-fast.env "$BIN/samgate" serve >"$WORK/samgate-fast.out" 2>"$WORK/samgate-fast.log" &
SG_FAST_PID=$!
for _ in $(seq 100); do grep -q '^listening on' "$WORK/upstream-h2.log" 2>/dev/null && break; sleep 0.1; done
[ -s "$WORK/upstream-h2-ca.pem" ] || die "TLS upstream wrote no CA (see $WORK/upstream-h2.log)"
proxy_env "$WORK/samgate-h2.env" "$SG_H2_PORT" "https://127.0.0.1:$H2_PORT/" "$WORK/upstream-h2-ca.pem"
SAMGATE_ENV_FILE=$WORK/samgate-h2.env "$BIN/samgate" serve >"$WORK/samgate-h2.out" 2>"$WORK/samgate-h2.log" &
SG_H2_PID=$!
# BENCH_BASELINE_BIN: an earlier samgate build, run beside this one against the same upstream
# (A/B in the same run, order alternated) for before/after rows.
FAST_TARGETS="direct nginx bare samgate samgate-h2"
if [ -n "${BENCH_BASELINE_BIN:-}" ]; then
    sed -e "s#^SAMGATE_LISTEN=.*#SAMGATE_LISTEN='127.0.0.1:${BENCH_SAMGATE_BASE_PORT:-18087}'#" \
        -e "s#^SAMGATE_PUBLIC_URL=.*#SAMGATE_PUBLIC_URL='http://127.0.0.1:${BENCH_SAMGATE_BASE_PORT:-18087}/'#" \
        "$WORK/samgate-fast.env" >"$WORK/samgate-baseline.env"
    SAMGATE_ENV_FILE=$WORK/samgate-baseline.env "$BENCH_BASELINE_BIN" serve >"$WORK/samgate-baseline.out" 2>"$WORK/samgate-baseline.log" &
    SG_BASE_PID=$!
    FAST_TARGETS="direct nginx bare samgate samgate-h2 baseline"
    for _ in $(seq 300); do [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${BENCH_SAMGATE_BASE_PORT:-18087}/readyz")" = 200 ] && break; sleep 0.1; done
fi
echo "$FAST_PID $BARE_PID $SG_FAST_PID $H2_PID $SG_H2_PID ${SG_BASE_PID:-}" >"$WORK/fast.pids"
for port in "$SG_FAST_PORT" "$SG_H2_PORT"; do
    for _ in $(seq 300); do [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] && break; sleep 0.1; done
done
fast_url() { # TARGET
    case $1 in
        direct) echo "$FAST/v1/customers?size=1" ;;
        nginx) echo "http://127.0.0.1:$NGINX_FAST_PORT/v1/customers?size=1" ;;
        bare) echo "http://127.0.0.1:$BARE_PORT/v1/customers?size=1" ;;
        samgate) echo "http://127.0.0.1:$SG_FAST_PORT/api/v1/partners/$CONTOSO/partner-center/v1/customers?size=1" ;;
        samgate-h2) echo "http://127.0.0.1:$SG_H2_PORT/api/v1/partners/$CONTOSO/partner-center/v1/customers?size=1" ;;
        baseline) echo "http://127.0.0.1:${BENCH_SAMGATE_BASE_PORT:-18087}/api/v1/partners/$CONTOSO/partner-center/v1/customers?size=1" ;;
    esac
}
fast_pids() { # TARGET: the proxy's processes
    case $1 in
        direct) echo "" ;;
        nginx) nginx_pids ;;
        bare) echo "$BARE_PID" ;;
        samgate) echo "$SG_FAST_PID" ;;
        samgate-h2) echo "$SG_H2_PID" ;;
        baseline) echo "$SG_BASE_PID" ;;
    esac
}
fast_upstream_pid() { # TARGET: the upstream it talks to
    if [ "$1" = samgate-h2 ]; then echo "$H2_PID"; else echo "$FAST_PID"; fi
}
is_samgate() { [ "$1" = samgate ] || [ "$1" = samgate-h2 ] || [ "$1" = baseline ]; }
for target in $FAST_TARGETS; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $(auth_for "$(is_samgate "$target" && echo samgate || echo direct)")" "$(fast_url $target)")
    [ "$code" = 200 ] || die "fast upstream via $target answered $code"
done
[ "${BENCH_HOLD:-}" = fast-setup ] && hold
# wrk_fast TARGET CONNECTIONS SECONDS [RATE_PER_THREAD] -> JSON with cpu_us_per_req {proxy, upstream}
wrk_fast() {
    local out p0 u0 pids upid auth
    pids=$(fast_pids "$1")
    upid=$(fast_upstream_pid "$1")
    auth=$(is_samgate "$1" && echo "Bearer $KEY" || echo "Bearer $TOKEN")
    p0=$(cpu_ticks $pids); u0=$(cpu_ticks "$upid")
    out=$(BENCH_AUTH=$auth BENCH_RATE_PER_THREAD=${4:-} wrk -t2 -c"$2" -d"$3"s --timeout 10s --latency \
        -s "$BENCH/wrk/report.lua" "$(fast_url "$1")")
    echo "$out" >>"$WORK/wrk.log"
    echo "$out" | sed -n 's/^JSON //p' | jq -c --argjson p "$(($(cpu_ticks $pids) - p0))" \
        --argjson u "$(($(cpu_ticks "$upid") - u0))" --argjson t "$TICK_US" \
        '. + {cpu_us_per_req: {proxy: ($p * $t / .requests | floor), upstream: ($u * $t / .requests | floor)}}'
}
for round in 1 2; do
    order=$FAST_TARGETS
    [ "$round" = 2 ] && order=$(echo "$FAST_TARGETS" | tr ' ' '\n' | tac | tr '\n' ' ')
    for target in $order; do
        log "fast upstream, small GET, $target, round $round: wrk -t2 -c$CONC -d${DURATION}s"
        R=$(wrk_fast "$target" "$CONC" "$DURATION")
        put "fast_${target}_r$round" "$R"
        log "  $(echo "$R" | jq -c '{rps, p50_ms, p99_ms, err_status, cpu_us_per_req}')"
    done
done
FAST_SAT=$(jq '[.fast_samgate_r1.rps, .fast_samgate_r2.rps] | max' "$RESULTS")
FAST_PER_THREAD=$(jq -n --argjson s "$FAST_SAT" '$s / 4')
for round in 1 2; do
    order=$FAST_TARGETS
    [ "$round" = 2 ] && order=$(echo "$FAST_TARGETS" | tr ' ' '\n' | tac | tr '\n' ' ')
    for target in $order; do
        log "fast upstream at half of samgate's saturation, $target, round $round"
        R=$(wrk_fast "$target" 16 "$HALF_SECS" "$FAST_PER_THREAD")
        put "fast_half_${target}_r$round" "$R"
        log "  $(echo "$R" | jq -c '{rps, p50_ms, p99_ms, err_status, cpu_us_per_req}')"
    done
done
[ "${BENCH_HOLD:-}" = fast ] && hold
for pid in ${SG_BASE_PID:-} $SG_H2_PID $H2_PID $SG_FAST_PID $BARE_PID $FAST_PID; do { kill "$pid" && wait "$pid"; } 2>/dev/null || true; done
SG_BASE_PID='' SG_H2_PID='' H2_PID='' SG_FAST_PID='' BARE_PID='' FAST_PID=
# Which protocol samgate-h2 spoke: the TLS upstream's per-version request counts.
H2_VERSIONS=$(sed -n 's/^requests by version: //p' "$WORK/upstream-h2.log")
log "TLS upstream (samgate-h2's), requests by version: ${H2_VERSIONS:-none printed}"
put fast_h2_upstream_versions "$(echo "$H2_VERSIONS" | tr ' ' '\n' | jq -R 'select(length > 0) | split("=") | {(.[0]): (.[1] | tonumber)}' | jq -s 'add // {}')"
if [ "${BENCH_ONLY:-}" = proxy ] || [ "${BENCH_ONLY:-}" = fast ]; then
    python3 "$BENCH/report.py" "$RESULTS" proxy >"$WORK/results.md"
    cat "$WORK/results.md"
    log "done (BENCH_ONLY=${BENCH_ONLY}) in $(($(date +%s) - STARTED)) s; results in $RESULTS"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# 10. Scenario 3: large responses (streaming): throughput and samgate's peak RSS per size
# ---------------------------------------------------------------------------------------------
# Peak RSS per phase: VmHWM reset through /proc/PID/clear_refs ("5"), else sampled VmRSS.
hwm_reset() { echo 5 >"/proc/$SG_PID/clear_refs" 2>/dev/null; }
sampler_start() {
    ( max=0; while :; do r=$(rss_kb "$SG_PID" VmRSS); [ "${r:-0}" -gt "$max" ] && max=$r && echo "$max" >"$WORK/rss.max"; sleep 0.05; done ) &
    SAMPLER_PID=$!
}
sampler_stop() { kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=''; cat "$WORK/rss.max"; rm -f "$WORK/rss.max"; }
BIG_SECS=$((DURATION * 2 / 3))
for size in small 1048576 20971520; do
    for target in direct nginx samgate; do
        if [ "$size" = small ]; then
            [ "$target" = samgate ] || continue # baseline peak at the same concurrency
            path='v1/customers?size=1'
        else
            path="v1/customers/$CUSTOMER/bigdata?bytes=$size"
        fi
        [ "$target" = samgate ] && { hwm_reset; echo 0 >"$WORK/rss.max"; sampler_start; }
        log "large response $size bytes, $target: wrk -t2 -c8 -d${BIG_SECS}s"
        R=$(wrk_json "$(url_for $target "$path")" "$(auth_for $target)" 2 8 "$BIG_SECS")
        if [ "$target" = samgate ]; then
            SAMPLED=$(sampler_stop)
            R=$(echo "$R" | jq --argjson h "$(rss_kb "$SG_PID" VmHWM)" --argjson s "$SAMPLED" '. + {samgate_vmhwm_kb: $h, samgate_sampled_peak_rss_kb: $s}')
        fi
        put "big_${size}_$target" "$R"
        log "  $(echo "$R" | jq -c '{rps, mb_per_sec, p50_ms, p99_ms, err_status, samgate_vmhwm_kb, samgate_sampled_peak_rss_kb}')"
    done
done

# ---------------------------------------------------------------------------------------------
# 10a. Scenario 9: the customer directory. Contoso gets BENCH_CUSTOMERS (5,000) generated customers
#      with active GDAP; one directory sync is timed with samgate's RSS sampled every 100 ms; then
#      the customer Graph route runs under load with database statements counted (the customer
#      gate answers from memory: no statement per call in the steady state).
# ---------------------------------------------------------------------------------------------
CUSTOMERS=${BENCH_CUSTOMERS:-5000}
log "customer directory: $CUSTOMERS generated customers for Contoso, one sync"
FIRST_CUSTOMER=$(curl -sf -X POST -H 'content-type: application/json' -d "{\"count\": $CUSTOMERS}" \
    "$EMU/_emulator/tenants/$CONTOSO/generated-customers" | jq -r '.customers[0]')
[ -n "$FIRST_CUSTOMER" ] && [ "$FIRST_CUSTOMER" != null ] || die "no generated customers"
curl -sf -X POST -H 'content-type: application/json' -d "{\"tenant\": \"$FIRST_CUSTOMER\", \"client_id\": \"$CLIENT_ID\"}" \
    "$EMU/_emulator/consents" >/dev/null || die "cannot consent the app in a generated customer"
RSS_BEFORE=$(rss_kb "$SG_PID" VmRSS)
( while :; do rss_kb "$SG_PID" VmRSS; sleep 0.1; done ) >"$WORK/sync.rss" &
SYNC_SAMPLER=$!
SYNC_STARTED=$(date +%s%N)
SYNC=$(curl -sf -X POST -H "authorization: Bearer $KEY" "$SG/api/v1/partners/$CONTOSO/customers/sync") || die "customer sync failed"
SYNC_MS=$((($(date +%s%N) - SYNC_STARTED) / 1000000))
kill "$SYNC_SAMPLER" 2>/dev/null; wait "$SYNC_SAMPLER" 2>/dev/null || true
RSS_PEAK=$(sort -n "$WORK/sync.rss" | tail -1)
CUSTOMER_URL="$SG/api/v1/partners/$CONTOSO/customers/$FIRST_CUSTOMER/graph/v1.0/users?\$top=1"
curl -sf -o /dev/null -H "authorization: Bearer $KEY" "$CUSTOMER_URL" || die "customer Graph call failed"
sleep 1
sql "SELECT pg_stat_statements_reset()" >/dev/null
CALLS_BEFORE=$(sql "SELECT count(*) FROM proxy_calls")
R=$(wrk_json "$CUSTOMER_URL" "Bearer $KEY" 2 "$CONC" 5)
sleep 1.5
PROXIED=$(($(sql "SELECT count(*) FROM proxy_calls") - CALLS_BEFORE))
OTHER=$(sql "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
             WHERE d.datname = 'samgate' AND query !~* 'pg_stat' AND query !~* 'proxy_calls'
               AND query !~* '^UPDATE grants SET last_used_at' AND query !~* '^(BEGIN|COMMIT)$'")
put customer_directory "$(jq -n --argjson sync "$SYNC" --argjson ms "$SYNC_MS" --argjson before "$RSS_BEFORE" \
    --argjson peak "$RSS_PEAK" --argjson r "$R" --argjson n "$PROXIED" --argjson other "$OTHER" \
    '{customers: $sync.report.listed, sync_ms: $ms, rss_kb_before: $before, rss_kb_peak_during_sync: $peak,
      customer_route: ($r | {rps, p50_ms, p99_ms, err_status}), proxied_requests: $n,
      other_statements: $other, other_statements_per_request: (if $n > 0 then $other / $n else null end)}')"
log "  $(jq -c '.customer_directory' "$RESULTS")"

# ---------------------------------------------------------------------------------------------
# 10b. Scenario 8: soak at a steady, moderate rate (BENCH_SOAK_RATE, default 1000 req/s, well below
#      saturation, as production mostly runs), /metrics scraped every 15 s like Prometheus would.
#      Runs before the seeding: the emulator slows down once it holds 10,000 extra tenants.
# ---------------------------------------------------------------------------------------------
SOAK_RATE=${BENCH_SOAK_RATE:-1000}
log "soak: ${SOAK}s of small GETs at $SOAK_RATE req/s (RSS every 5 s, /metrics every 15 s)"
INSERT_TEXTS_BEFORE=$(sql "SELECT count(*) FROM pg_stat_statements WHERE query LIKE 'INSERT INTO proxy_calls%'")
( for _ in $(seq $((SOAK / 5 + 1))); do rss_kb "$SG_PID" VmRSS; sleep 5; done ) >"$WORK/soak.rss" &
SAMPLER_PID=$!
( while :; do sleep 15; curl -s -o /dev/null "$SG/metrics"; done ) &
SCRAPER_PID=$!
R=$(wrk_json "$SMALL_SG" "Bearer $KEY" 2 16 "$SOAK" "$((SOAK_RATE / 2))")
wait "$SAMPLER_PID" 2>/dev/null || true
kill "$SCRAPER_PID" 2>/dev/null; wait "$SCRAPER_PID" 2>/dev/null || true
SAMPLER_PID=''
# The call-record writer's INSERT has one text per batch size (VALUES lists): count the distinct
# texts PostgreSQL saw, and the private memory of samgate's PostgreSQL backends.
INSERT_TEXTS=$(($(sql "SELECT count(*) FROM pg_stat_statements WHERE query LIKE 'INSERT INTO proxy_calls%'") - INSERT_TEXTS_BEFORE))
BACKEND_ANON=$(for p in $(sql "SELECT pid FROM pg_stat_activity WHERE datname = 'samgate' AND pid <> pg_backend_pid()"); do
    awk '/RssAnon/ {print $2}' "/proc/$p/status" 2>/dev/null; done | jq -s '{backends: length, anon_kb_total: add, anon_kb_max: max}')
put soak "$(echo "$R" | jq --argjson rss "$(jq -s . "$WORK/soak.rss")" --argjson texts "$INSERT_TEXTS" --argjson pg "$BACKEND_ANON" \
    '{rate: '"$SOAK_RATE"', rps, p50_ms, p99_ms, err_status, cpu_us_per_req, rss_kb_every_5s: $rss, new_insert_statement_texts: $texts, pg_backends: $pg}')"
log "  $(jq -c '.soak | del(.rss_kb_every_5s)' "$RESULTS"); RSS $(jq -c '.soak.rss_kb_every_5s' "$RESULTS")"

# ---------------------------------------------------------------------------------------------
# 11. Scenarios 5 and 6: 100,000 partners with sealed grants; the first $EMULATED are tenants the
#     emulator knows (GDAP from Contoso + app consent), so their refresh tokens really redeem.
# ---------------------------------------------------------------------------------------------
log "seeding $PARTNERS partners ($EMULATED known to the emulator)"
SEED=$(DATABASE_URL=$DATABASE_URL SAMGATE_KEKS=$KEKS "$BIN/samgate-bench" seed --partners "$PARTNERS" \
    --emulated "$EMULATED" --emulator "$EMU" --source-tenant "$CONTOSO" --client-id "$CLIENT_ID" \
    --tenants-out "$WORK/tenants.txt")
put seed "$SEED"
log "  $SEED"
sql "CREATE TABLE bench_emulated (n serial, tenant_id uuid)"
"${PSQL[@]}" -d samgate -c "\\copy bench_emulated (tenant_id) FROM '$WORK/tenants.txt'"
sql "VACUUM ANALYZE partners" && sql "VACUUM ANALYZE grants"

# Keep-alive claim statement at 100k grants (EXPLAIN ANALYZE inside a rolled-back transaction):
# nothing due, and everything due (the worst case after a mass onboarding).
CLAIM="WITH due AS (SELECT g.partner_id FROM grants g JOIN partners p ON p.id = g.partner_id
        WHERE g.refreshed_at < now() - interval '14 days'
          AND (g.keepalive_lease_until IS NULL OR g.keepalive_lease_until <= now())
          AND p.status IN ('healthy', 'degraded')
        ORDER BY g.refreshed_at LIMIT 100 FOR UPDATE OF g SKIP LOCKED)
      UPDATE grants g SET keepalive_lease_until = now() + interval '5 minutes' FROM due, partners p
      WHERE g.partner_id = due.partner_id AND p.id = g.partner_id
      RETURNING g.partner_id, p.tenant_id, p.display_name, p.status, p.status_code, p.status_reason"
claim_ms() {
    "${PSQL[@]}" -d samgate -c "BEGIN" -c "$1" -c "EXPLAIN (ANALYZE, FORMAT JSON) $CLAIM" -c "ROLLBACK" | jq -s '.[0][0]["Execution Time"]'
}
put claim_query "$(jq -n --argjson none "$(claim_ms "SET LOCAL work_mem = '4MB'")" \
    --argjson all "$(claim_ms "UPDATE grants SET refreshed_at = now() - interval '30 days'")" \
    '{nothing_due_ms: $none, all_100k_due_ms: $all}')"
log "  claim query: $(jq -c .claim_query "$RESULTS")"

# Keep-alive sweeps with `samgate partners refresh` (the keep-alive job's code, default
# concurrency 8, jitter 0): N due grants among 100,000; two sizes to check linearity.
sweep() { # FIRST LAST LABEL
    sql "UPDATE grants SET refreshed_at = now() - interval '30 days'
         WHERE partner_id IN (SELECT p.id FROM partners p JOIN bench_emulated e USING (tenant_id) WHERE e.n BETWEEN $1 AND $2)" >/dev/null
    sql "SELECT pg_stat_statements_reset()" >/dev/null
    curl -sf -X DELETE "$EMU/_emulator/counters" >/dev/null
    log "keep-alive sweep of $(($2 - $1 + 1)) due grants among $PARTNERS"
    local out secs rss
    out=$( { /usr/bin/time -f 'TIME %e %M' "$BIN/samgate" partners refresh 2>&1 1>&3 | grep '^TIME' >"$WORK/time.out"; } 3>&1 )
    read -r _ secs rss <"$WORK/time.out"
    local dbms tokens
    dbms=$(sql "SELECT round(sum(total_exec_time)::numeric, 1) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'samgate' AND query !~* 'pg_stat'")
    tokens=$(curl -sf "$EMU/_emulator/counters" | jq '[.token[] | select(.grant_type == "refresh_token") | .count] | add // 0')
    out=$(echo "$out" | grep -E '^refreshed [0-9]+' | tail -1)
    put "sweep_$3" "$(jq -n --arg out "$out" --argjson n "$(($2 - $1 + 1))" --argjson secs "$secs" --argjson rss "$rss" \
        --argjson dbms "$dbms" --argjson tokens "$tokens" \
        '{due: $n, summary: $out, secs: $secs, per_grant_ms: ($secs * 1000 / $n), max_rss_kb: $rss,
          db_exec_ms: $dbms, db_ms_per_grant: ($dbms / $n), token_calls: $tokens}')"
    log "  $(jq -c ".sweep_$3" "$RESULTS")"
}
SWEEP_SMALL=$((EMULATED / 10))
sweep 1 "$SWEEP_SMALL" small
sweep $((SWEEP_SMALL + 1)) "$EMULATED" large

# ---------------------------------------------------------------------------------------------
# 12. Scenario 8: 10,000 cached access tokens (one proxied Graph call per emulated partner)
# ---------------------------------------------------------------------------------------------
WARM_N=$((EMULATED < 10000 ? EMULATED : 10000))
log "filling samgate's token cache: $WARM_N partners"
RSS_BEFORE_WARM=$(rss_kb "$SG_PID" VmRSS)
WARM=$("$BIN/samgate-bench" warm --base "$SG" --tenants "$WORK/tenants.txt" --limit "$WARM_N" --concurrency 32)
sleep 2
put tokens_10k "$(jq -n --argjson w "$WARM" --argjson before "$RSS_BEFORE_WARM" --argjson after "$(rss_kb "$SG_PID" VmRSS)" \
    '$w + {rss_before_kb: $before, rss_after_kb: $after, per_token_bytes: ((($after - $before) * 1024 / $w.calls) | floor)}')"
log "  $(jq -c .tokens_10k "$RESULTS")"

# ---------------------------------------------------------------------------------------------
# 13. Scenario 6: admin partners list at 100,000 partners (staff viewer, CSRF login)
# ---------------------------------------------------------------------------------------------
log "admin list at $PARTNERS partners"
STAFF_PW=$(samgate staff add --email bench@example.com --role viewer | awk '$1 == "password" {print $2}')
JAR=$WORK/cookies.txt
CSRF=$(curl -sf -c "$JAR" -b "$JAR" "$SG/admin/login" | grep -o 'name="csrf" value="[^"]*"' | sed 's/.*value="//; s/"$//')
CODE=$(curl -s -o /dev/null -w '%{http_code}' -c "$JAR" -b "$JAR" -H "Origin: $SG" \
    --data-urlencode "csrf=$CSRF" --data-urlencode "email=bench@example.com" \
    --data-urlencode "password=$STAFF_PW" --data-urlencode "return_to=/admin" "$SG/admin/login")
[ "$CODE" = 303 ] || die "staff sign-in answered $CODE"
AFTER_500=$(sql "SELECT id FROM partners ORDER BY display_name, id OFFSET 24949 LIMIT 1")
admin_p50() { # LABEL PATH
    local status
    status=$(curl -s -o "$WORK/admin-$1.html" -w '%{http_code}' -b "$JAR" "$SG$2")
    [ "$status" = 200 ] || die "admin $2 answered $status"
    local rows
    rows=$(grep -c 'href="/admin/partners/' "$WORK/admin-$1.html" || true)
    for _ in $(seq 50); do curl -s -o /dev/null -b "$JAR" -w '%{time_total}\n' "$SG$2"; done | sort -n >"$WORK/admin-$1.times"
    put "admin_$1" "$(jq -n --arg p "$2" --argjson rows "$rows" \
        --argjson p50 "$(awk 'NR == 25 {print $1 * 1000}' "$WORK/admin-$1.times")" \
        --argjson p90 "$(awk 'NR == 45 {print $1 * 1000}' "$WORK/admin-$1.times")" \
        '{path: $p, rows_linked: $rows, p50_ms: $p50, p90_ms: $p90}')"
    log "  $1: $(jq -c ".admin_$1" "$RESULTS")"
}
admin_p50 first "/admin/partners"
admin_p50 page500 "/admin/partners?after=$AFTER_500"
admin_p50 q_common "/admin/partners?q=Nimbus"
admin_p50 q_rare "/admin/partners?q=Cedar%20Labs%20012"
admin_p50 q_none "/admin/partners?q=no-such-partner"
admin_p50 status "/admin/partners?status=needs_consent"
admin_p50 status_page500 "/admin/partners?status=healthy&after=$AFTER_500"
# The statement behind the slowest variant (db::staff::list_partners with q=Nimbus), for the record.
"${PSQL[@]}" -d samgate -c "EXPLAIN (ANALYZE, BUFFERS) SELECT p.id, p.tenant_id, p.display_name, p.domain, p.status,
     p.status_reason, p.status_code, p.status_changed_at, g.refreshed_at, g.last_used_at
     FROM partners p LEFT JOIN grants g ON g.partner_id = p.id
     WHERE TRUE AND (p.display_name ILIKE '%Nimbus%' OR p.domain ILIKE '%Nimbus%') ORDER BY p.display_name, p.id LIMIT 51" \
    >"$WORK/explain-admin-q.txt"
put admin_q_plan_ms "$(awk '/Execution Time/ {print $3}' "$WORK/explain-admin-q.txt")"

put total_secs "$(($(date +%s) - STARTED))"

# ---------------------------------------------------------------------------------------------
# 15. Report
# ---------------------------------------------------------------------------------------------
python3 "$BENCH/report.py" "$RESULTS" >"$WORK/results.md"
cat "$WORK/results.md"
log "done in $(($(date +%s) - STARTED)) s; results in $RESULTS and $WORK/results.md"
[ "${BENCH_HOLD:-}" = end ] && hold
exit 0
