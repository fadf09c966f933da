#!/usr/bin/env bash
# Accounts at scale: N `[[accounts]]` of the config file (default 10 000; 100 000 works) on one
# gateway and on three sharing one store, with exact counts of what the gateways ask WeChat
# (the mock) for.
#
#   0. The mock (`wxgate mock-wechat`) learns the N accounts (`POST /__mock/accounts`, it refuses
#      unknown appids); a config file with N accounts is generated (names a000001…, appids
#      wxscale00000000001…, one AppSecret each).
#   1. Baseline: a gateway with ONE account (the first) on a fresh store; its token requested
#      once; RSS after. Memory per account below is (RSS − this baseline) / (N − 1).
#   2. One instance with N accounts on a fresh store: start time (process spawn → `/readyz` 200)
#      and RSS; warm: every account's access_token requested once (curl --parallel, 64 at a
#      time) — the mock must count exactly N token fetches (`cgi-bin/token` + `stable_token`);
#      RSS after; idle: over SCALE_IDLE_S seconds (default 30) with N tokens cached and no
#      traffic, the gateway's CPU (utime + stime from /proc/PID/stat), WeChat calls (must be 0)
#      and store operations per second: the gateway's own `wxgate_store_operations_total` (sum
#      over labels, from /metrics before and after; "n/a" on a build without it) and the
#      backend's count (Redis `INFO stats` total_commands_processed, PostgreSQL
#      `pg_stat_database.xact_commit` of the run's own database; none for SQLite), and for
#      Redis the server's CPU (`INFO cpu`). The mock's and the gateways' CPU during the warm
#      round are printed too.
#   3. Three instances with N accounts sharing a fresh store (ports GW, GW+1, GW+2, spawned at
#      once): start times and RSS; warm: every account asked on ALL THREE instances, the three
#      requests for one account next to each other in the list so they are in flight together
#      (3N requests, 64 at a time) — the mock must still count exactly N token fetches; RSS
#      after; idle as in 2, per instance, over the same window.
# A table at the end, one line per measurement. Exit 1 if a fetch count is off.
#
# Usage: bench/scale.sh [N]
#   SCALE_STORE=sqlite|redis|postgres (default sqlite: a file in a temp dir; the database,
#     database.url, is always SQLite in the temp dir, one file per phase, shared by the three)
#   SCALE_REDIS_URL (default $WXGATE_TEST_REDIS_URL or redis://127.0.0.1:6379/0): each phase
#     uses a fresh key_prefix `wxgate-scale-<pid>-<phase>:`, its keys deleted at the end
#   SCALE_POSTGRES_URL (default $WXGATE_TEST_POSTGRES_URL or
#     postgres://postgres@127.0.0.1:5432/test): each phase gets a fresh database
#     `wxgate_scale_<pid>_<phase>` (created there, dropped at the end)
#   SCALE_IDLE_S=30, SCALE_PARALLEL=64, SCALE_BIN (a wxgate binary to run instead of building
#   the release one). Release build (as bench/run.sh builds it). Ports
#   19920-19923. The Redis and PostgreSQL counters are server-wide (Redis) or per database
#   (PostgreSQL): other clients of the same Redis server count too.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
STORE="${SCALE_STORE:-sqlite}"
IDLE_S="${SCALE_IDLE_S:-30}"
PAR="${SCALE_PARALLEL:-64}"
REDIS_URL="${SCALE_REDIS_URL:-${WXGATE_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}}"
PG_URL="${SCALE_POSTGRES_URL:-${WXGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}}"
case "$STORE" in sqlite | redis | postgres) ;; *) echo "scale: SCALE_STORE must be sqlite, redis or postgres" >&2; exit 2 ;; esac
[ "$N" -ge 2 ] 2>/dev/null || { echo "scale: N must be a number ≥ 2" >&2; exit 2; }

command -v jq >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq jq; }
[ "$STORE" != redis ] || command -v redis-cli >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq redis-tools; }
[ "$STORE" != postgres ] || command -v psql >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq postgresql-client; }
# Built as bench/run.sh builds it (the example's dev-dependencies unify features), so the
# scripts share one binary instead of rebuilding it in turn.
# SCALE_BIN=PATH runs that binary instead (no build), e.g. to try the script on a debug build.
if [ -n "${SCALE_BIN:-}" ]; then
  BIN=$SCALE_BIN
else
  cargo build --release --bin wxgate --example trivial -q
  BIN=target/release/wxgate
fi

work=$(mktemp -d)
MOCK_PID=
GW_PIDS=()
REDIS_PREFIXES=()
PG_DBS=()
cleanup() {
  for p in "${GW_PIDS[@]}" $MOCK_PID; do kill "$p" 2>/dev/null || true; done
  for prefix in "${REDIS_PREFIXES[@]}"; do
    redis-cli -u "$REDIS_URL" --scan --pattern "${prefix}*" 2>/dev/null | xargs -r -n 1000 redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
  done
  for db in "${PG_DBS[@]}"; do
    psql "$PG_URL" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

KEY=scale-api-key-0123456789abcdef
MOCK_PORT=19920
GW_PORT=19921
MOCK=127.0.0.1:$MOCK_PORT
TICKS_PER_S=$(getconf CLK_TCK)

die() { echo "scale: $*" >&2; for f in "$work"/*.log; do [ -e "$f" ] || continue; echo "== $f" >&2; tail -n 20 "$f" >&2; done; exit 1; }
now_ms() { date +%s%3N; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# fetches: the mock's access-token fetches so far (cgi-bin/token and cgi-bin/stable_token).
fetches() { curl -fsS "http://$MOCK/__mock/calls" | jq '(."cgi-bin/token" // 0) + (."cgi-bin/stable_token" // 0)'; }
# wechat_calls: every WeChat API call the mock has answered so far.
wechat_calls() { curl -fsS "http://$MOCK/__mock/calls" | jq '[.[]] | add // 0'; }
wait_ok() { for _ in $(seq 1 1200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done; die "not up: $1"; }
# store_ops PORT FILE: the sum of wxgate_store_operations_total over its labels, or "n/a";
# the counter's lines kept in FILE (for by_op).
store_ops() {
  curl -fsS "http://127.0.0.1:$1/metrics" | { grep '^wxgate_store_operations_total[{ ]' || true; } >"$2"
  awk '{ s += $NF; seen = 1 } END { if (seen) printf "%.0f\n", s; else print "n/a" }' "$2"
}
# by_op BEFORE AFTER: the operations that changed between two store_ops files, "op +n, …".
by_op() {
  awk 'match($0, /op="[^"]*"/) { op = substr($0, RSTART + 4, RLENGTH - 5)
      if (FNR == NR) before[op] = $NF; else if ($NF != before[op]) { printf "%s%s +%d", sep, op, $NF - before[op]; sep = ", " } }
    END { if (sep == "") printf "none" }' "$1" "$2"
}
# backend_ops PHASE: the backend's own operation counter (see the header), or "n/a".
backend_ops() {
  case "$STORE" in
  redis) redis-cli -u "$REDIS_URL" INFO stats | tr -d '\r' | awk -F: '$1 == "total_commands_processed" { print $2 }' ;;
  postgres) psql "$PG_URL" -qAtc "SELECT xact_commit FROM pg_stat_database WHERE datname = 'wxgate_scale_$$_$1'" ;;
  *) echo n/a ;;
  esac
}
# rate BEFORE AFTER MS: (AFTER − BEFORE) per second over MS milliseconds, or n/a.
# backend_cpu: the Redis server's CPU seconds so far (INFO cpu, user + sys), or "n/a".
backend_cpu() {
  if [ "$STORE" = redis ]; then
    redis-cli -u "$REDIS_URL" INFO cpu | tr -d '\r' | awk -F: '$1 == "used_cpu_user" || $1 == "used_cpu_sys" { s += $2 } END { printf "%.3f\n", s }'
  else echo n/a; fi
}
rate() { if [ "$1" = n/a ] || [ "$2" = n/a ]; then echo n/a; else awk -v d=$(($2 - $1)) -v ms="$3" 'BEGIN { printf "%.2f", d * 1000 / ms }'; fi; }
cpu_pct() { awk -v t="$1" -v hz="$TICKS_PER_S" -v s="$IDLE_S" 'BEGIN { printf "%.2f", 100 * t / hz / s }'; }

for port in $(seq 19920 19923); do
  ! curl -s -o /dev/null "http://127.0.0.1:$port/" || die "127.0.0.1:$port is in use (another run of this script?)"
done

name_of() { printf 'a%06d' "$1"; }
# shellcheck source=bench/lib/accounts.sh
. bench/lib/accounts.sh
accounts_toml "$N" "$work/accounts-n.toml"
head -n 5 "$work/accounts-n.toml" >"$work/accounts-1.toml"

# --- 0. the mock, which must know every appid and its secret -----------------------------------
"$BIN" mock-wechat --listen "$MOCK" >"$work/mock.log" 2>&1 &
MOCK_PID=$!
wait_ok "http://$MOCK/__mock/calls"
started=$(now_ms)
bad=$(register_accounts "$N" "$MOCK" "$work")
[ "$bad" -eq 0 ] || die "$bad of $N accounts not registered in the mock"
echo "mock: $N accounts registered in $(secs $(($(now_ms) - started))) s"

# --- stores ------------------------------------------------------------------------------------
# fresh_store PHASE: a fresh store for that phase (created here, removed by cleanup); sets
# STORAGE_TOML to its [storage] table. Not called in a subshell: it records what to clean.
fresh_store() {
  case "$STORE" in
  sqlite) STORAGE_TOML=$(printf '[storage]\nurl = "sqlite://%s/store-%s.db"' "$work" "$1") ;;
  redis)
    local prefix="wxgate-scale-$$-$1:"
    REDIS_PREFIXES+=("$prefix")
    STORAGE_TOML=$(printf '[storage]\nurl = "%s"\nkey_prefix = "%s"' "$REDIS_URL" "$prefix")
    ;;
  postgres)
    local db="wxgate_scale_$$_$1"
    psql "$PG_URL" -qAtc "CREATE DATABASE $db" >/dev/null || die "could not create the database $db at $PG_URL"
    PG_DBS+=("$db")
    # The same server and user, the database replaced (the URL's path; its query kept).
    STORAGE_TOML=$(printf '[storage]\nurl = "%s"' "$(sed -E "s#^(postgres(ql)?://[^/]+)/[^?]*#\1/$db#" <<<"$PG_URL")")
    ;;
  esac
}
case "$STORE" in
redis) redis-cli -u "$REDIS_URL" ping >/dev/null || die "Redis at $REDIS_URL is not answering" ;;
postgres) psql "$PG_URL" -qAtc "SELECT 1" >/dev/null || die "PostgreSQL at $PG_URL is not answering" ;;
esac

# write_config FILE PORT STORAGE_TOML DATABASE_FILE ACCOUNTS_FILE
write_config() {
  {
    printf '[server]\nlisten = "127.0.0.1:%s"\n' "$2"
    echo "$3"
    printf '[database]\nurl = "sqlite://%s"\n' "$4"
    printf '[upstream]\napi_base = "http://%s"\nopen_base = "http://%s"\nmp_base = "http://%s"\n' "$MOCK" "$MOCK" "$MOCK"
    printf '[api]\nkeys = ["%s"]\n\n' "$KEY"
    cat "$5"
  } >"$1"
}

# spawn CONFIG LOG: a gateway in the background; its pid appended to GW_PIDS.
spawn() {
  WXGATE_LOG=warn "$BIN" serve --config "$1" >>"$2" 2>&1 &
  GW_PIDS+=($!)
}
# await_ready SPAWNED_MS PORT...: waits for the gateways (GW_PIDS, in PORT order), polling
# each `/readyz` every ~10 ms; READY_MS[i]: milliseconds from the spawn to its first 200.
await_ready() {
  local spawned=$1 deadline=$(($(now_ms) + 600000)) i pending
  shift
  local ports=("$@")
  READY_MS=()
  while :; do
    pending=0
    for i in "${!ports[@]}"; do
      [ -z "${READY_MS[i]:-}" ] || continue
      if curl -fsS -o /dev/null "http://127.0.0.1:${ports[i]}/readyz" 2>/dev/null; then
        READY_MS[i]=$(($(now_ms) - spawned))
      else
        kill -0 "${GW_PIDS[i]}" 2>/dev/null || die "the gateway on port ${ports[i]} exited"
        pending=1
      fi
    done
    [ "$pending" -eq 1 ] || return 0
    [ "$(now_ms)" -lt "$deadline" ] || die "a gateway was not ready within 600 s"
    sleep 0.01
  done
}
stop_all() {
  for p in "${GW_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${GW_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  GW_PIDS=()
}

# request_file OUT PORT...: every account's access_token once on each PORT, the ports of one
# account next to each other.
request_file() {
  local out=$1
  shift
  awk -v n="$N" -v ports="$*" -v key="$KEY" 'BEGIN { np = split(ports, p, " ")
    printf "header = \"Authorization: Bearer %s\"\n", key
    for (i = 1; i <= n; i++) for (j = 1; j <= np; j++)
      printf "url = \"http://127.0.0.1:%s/api/v1/accounts/a%06d/access_token\"\n", p[j], i }' >"$out"
}
# request_all FILE EXPECTED: the requests of FILE, PAR at a time; fails unless EXPECTED
# answered a token. Prints the milliseconds it took.
request_all() {
  local started tokens
  started=$(now_ms)
  tokens=$({ curl -sS --no-progress-meter --max-time 120 --parallel --parallel-max "$PAR" -K "$1" 2>>"$work/curl.log" || true; } | { grep -o '"access_token":"' || true; } | wc -l)
  [ "$tokens" -eq "$2" ] || die "$tokens of $2 requests answered a token"
  echo $(($(now_ms) - started))
}

# cpu_before / cpu_after: WARM_CPU, the CPU seconds the gateways (GW_PIDS, each) and the mock
# used in between, "g1 / g2 / g3 s, mock m s".
cpu_before() {
  local p
  CPU0=()
  for p in "${GW_PIDS[@]}" "$MOCK_PID"; do CPU0+=("$(cpu_ticks "$p")"); done
}
cpu_after() {
  local i p gw=() all=("${GW_PIDS[@]}" "$MOCK_PID")
  for i in "${!all[@]}"; do
    p=$(awk -v t=$(($(cpu_ticks "${all[i]}") - CPU0[i])) -v hz="$TICKS_PER_S" 'BEGIN { printf "%.2f", t / hz }')
    if [ "$i" -lt "${#GW_PIDS[@]}" ]; then gw+=("$p"); else
      local joined
      joined=$(IFS=/; echo "${gw[*]}")
      WARM_CPU="${joined//\// / } s, mock $p s"
    fi
  done
}

# idle PORT...: measures the running gateways (GW_PIDS, in PORT order) over IDLE_S seconds with
# no traffic; sets IDLE_CPU[i], IDLE_STORE[i] (ops/s), IDLE_BACKEND (ops/s), IDLE_CALLS.
idle() {
  local phase=$1
  shift
  local ports=("$@") i ops0=() ops1=() m0=() m1=() t0=() t1=() b0 b1 bc0 bc1 bm0 bm1 c0 c1
  # PostgreSQL's backends report their transactions to pg_stat_database lazily (an idle one
  # within 10 s, PGSTAT_IDLE_INTERVAL): without a wait, the warm round's would count here.
  [ "$STORE" != postgres ] || sleep 11
  # The gateways' counters are read first and last, each over its own elapsed time, so the
  # CPU window (between them) does not include a scrape of /metrics.
  for i in "${!ports[@]}"; do
    ops0[i]=$(store_ops "${ports[i]}" "$work/ops-$phase-$i-0")
    m0[i]=$(now_ms)
  done
  c0=$(wechat_calls)
  b0=$(backend_ops "$phase")
  bc0=$(backend_cpu)
  bm0=$(now_ms)
  for i in "${!ports[@]}"; do t0[i]=$(cpu_ticks "${GW_PIDS[i]}"); done
  sleep "$IDLE_S"
  for i in "${!ports[@]}"; do t1[i]=$(cpu_ticks "${GW_PIDS[i]}"); done
  b1=$(backend_ops "$phase")
  bc1=$(backend_cpu)
  bm1=$(now_ms)
  c1=$(wechat_calls)
  for i in "${!ports[@]}"; do
    m1[i]=$(now_ms)
    ops1[i]=$(store_ops "${ports[i]}" "$work/ops-$phase-$i-1")
  done
  IDLE_CPU=() IDLE_STORE=() IDLE_BY_OP=()
  for i in "${!ports[@]}"; do
    IDLE_CPU[i]=$(cpu_pct $((t1[i] - t0[i])))
    IDLE_BY_OP[i]=$(by_op "$work/ops-$phase-$i-0" "$work/ops-$phase-$i-1")
    IDLE_STORE[i]=$(rate "${ops0[i]}" "${ops1[i]}" $((m1[i] - m0[i])))
  done
  IDLE_BACKEND=$(rate "$b0" "$b1" $((bm1 - bm0)))
  if [ "$bc0" = n/a ]; then IDLE_BACKEND_CPU=n/a; else
    IDLE_BACKEND_CPU="$(awk -v a="$bc0" -v b="$bc1" -v ms=$((bm1 - bm0)) 'BEGIN { printf "%.2f", 100 * (b - a) * 1000 / ms }') % of a core"
  fi
  IDLE_CALLS=$((c1 - c0))
}

fail=0
check() { # WHAT GOT EXPECTED
  if [ "$2" -ne "$3" ]; then echo "FAIL: $1: $2, expected exactly $3"; fail=1; fi
}

# --- 1. baseline: one account ------------------------------------------------------------------
fresh_store base
write_config "$work/one.toml" "$GW_PORT" "$STORAGE_TOML" "$work/database-base.db" "$work/accounts-1.toml"
spawned=$(now_ms)
spawn "$work/one.toml" "$work/gateway-base.log"
await_ready "$spawned" "$GW_PORT"
base_ready_ms=${READY_MS[0]}
curl -fsS -H "Authorization: Bearer $KEY" "http://127.0.0.1:$GW_PORT/api/v1/accounts/a000001/access_token" >/dev/null
sleep 2
base_rss=$(rss_kb "${GW_PIDS[0]}")
stop_all
echo "baseline, 1 account: ready in $(secs "$base_ready_ms") s, RSS $(mib "$base_rss") MiB with its token"

# --- 2. one instance, N accounts ---------------------------------------------------------------
fresh_store single
write_config "$work/single.toml" "$GW_PORT" "$STORAGE_TOML" "$work/database-single.db" "$work/accounts-n.toml"
f0=$(fetches)
spawned=$(now_ms)
spawn "$work/single.toml" "$work/gateway-single.log"
await_ready "$spawned" "$GW_PORT"
s_ready_ms=${READY_MS[0]}
sleep 1
s_rss_start=$(rss_kb "${GW_PIDS[0]}")
s_start_fetches=$(($(fetches) - f0))
echo "1 instance, $N accounts: ready in $(secs "$s_ready_ms") s, RSS $(mib "$s_rss_start") MiB, $s_start_fetches token fetches at start"
request_file "$work/single.curl" "$GW_PORT"
f1=$(fetches)
cpu_before
s_warm_ms=$(request_all "$work/single.curl" "$N")
cpu_after
s_warm_cpu=$WARM_CPU
s_warm_fetches=$(($(fetches) - f1))
sleep 2
s_rss_warm=$(rss_kb "${GW_PIDS[0]}")
echo "  warm: $N requests in $(secs "$s_warm_ms") s (CPU: gateway $s_warm_cpu), $s_warm_fetches token fetches; RSS $(mib "$s_rss_warm") MiB"
idle single "$GW_PORT"
s_idle_cpu=${IDLE_CPU[0]} s_idle_store=${IDLE_STORE[0]} s_idle_backend=$IDLE_BACKEND s_idle_backend_cpu=$IDLE_BACKEND_CPU s_idle_calls=$IDLE_CALLS s_idle_by_op=${IDLE_BY_OP[0]}
echo "  idle ${IDLE_S} s: CPU $s_idle_cpu % of a core, store ops/s $s_idle_store (gateway) $s_idle_backend (backend), WeChat calls $s_idle_calls"
stop_all

# --- 3. three instances, one store -------------------------------------------------------------
PORTS=("$GW_PORT" $((GW_PORT + 1)) $((GW_PORT + 2)))
fresh_store three
for i in 0 1 2; do
  write_config "$work/three-$i.toml" "${PORTS[i]}" "$STORAGE_TOML" "$work/database-three.db" "$work/accounts-n.toml"
done
f0=$(fetches)
spawned=$(now_ms)
for i in 0 1 2; do spawn "$work/three-$i.toml" "$work/gateway-three-$i.log"; done
await_ready "$spawned" "${PORTS[@]}"
t_ready=("${READY_MS[@]}") t_rss_start=() t_rss_warm=()
sleep 1
for i in 0 1 2; do t_rss_start[i]=$(rss_kb "${GW_PIDS[i]}"); done
t_start_fetches=$(($(fetches) - f0))
echo "3 instances, $N accounts each, spawned together: ready in $(secs "${t_ready[0]}") / $(secs "${t_ready[1]}") / $(secs "${t_ready[2]}") s, RSS $(mib "${t_rss_start[0]}") / $(mib "${t_rss_start[1]}") / $(mib "${t_rss_start[2]}") MiB, $t_start_fetches token fetches at start"
request_file "$work/three.curl" "${PORTS[@]}"
f1=$(fetches)
cpu_before
t_warm_ms=$(request_all "$work/three.curl" $((3 * N)))
cpu_after
t_warm_cpu=$WARM_CPU
t_warm_fetches=$(($(fetches) - f1))
sleep 2
for i in 0 1 2; do t_rss_warm[i]=$(rss_kb "${GW_PIDS[i]}"); done
echo "  warm: $((3 * N)) requests (each account on all 3) in $(secs "$t_warm_ms") s (CPU: gateways $t_warm_cpu), $t_warm_fetches token fetches; RSS $(mib "${t_rss_warm[0]}") / $(mib "${t_rss_warm[1]}") / $(mib "${t_rss_warm[2]}") MiB"
idle three "${PORTS[@]}"
echo "  idle ${IDLE_S} s: CPU ${IDLE_CPU[0]} / ${IDLE_CPU[1]} / ${IDLE_CPU[2]} % of a core, store ops/s ${IDLE_STORE[0]} / ${IDLE_STORE[1]} / ${IDLE_STORE[2]} (gateways) $IDLE_BACKEND (backend, all three), WeChat calls $IDLE_CALLS"
stop_all

# --- report ------------------------------------------------------------------------------------
per_account() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }'; }
line() { printf '%-66s %s\n' "$1" "$2"; }
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
echo
echo "== scale: $N accounts, $STORE store, commit $commit ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ))"
line "baseline (1 account, its token cached): RSS" "$(mib "$base_rss") MiB"
line "1 instance: start (spawn to /readyz 200)" "$(secs "$s_ready_ms") s"
line "1 instance: RSS at start" "$(mib "$s_rss_start") MiB ($(per_account "$s_rss_start" "$base_rss" $((N - 1))) B per account over the baseline)"
line "1 instance: warm, $N token requests ($PAR at a time)" "$(secs "$s_warm_ms") s"
line "1 instance: CPU used during warm" "gateway $s_warm_cpu"
line "1 instance: token fetches at start + warm (exactly $N expected)" "$s_start_fetches + $s_warm_fetches"
line "1 instance: RSS after warm" "$(mib "$s_rss_warm") MiB"
line "1 instance: memory per account, (RSS warm - baseline)/(N-1)" "$(per_account "$s_rss_warm" "$base_rss" $((N - 1))) B"
line "1 instance: idle CPU, ${IDLE_S} s, $N tokens cached" "$s_idle_cpu % of a core"
line "1 instance: idle WeChat calls (0 expected)" "$s_idle_calls"
line "1 instance: idle store ops/s, gateway counter" "$s_idle_store"
line "1 instance: idle store ops, gateway counter, by operation" "$s_idle_by_op"
line "1 instance: idle store ops/s, backend ($STORE)" "$s_idle_backend"
line "1 instance: idle store server CPU (Redis only)" "$s_idle_backend_cpu"
line "3 instances: start, spawned together" "$(secs "${t_ready[0]}") / $(secs "${t_ready[1]}") / $(secs "${t_ready[2]}") s"
line "3 instances: RSS at start" "$(mib "${t_rss_start[0]}") / $(mib "${t_rss_start[1]}") / $(mib "${t_rss_start[2]}") MiB"
line "3 instances: warm, $((3 * N)) requests (each account on all 3)" "$(secs "$t_warm_ms") s"
line "3 instances: CPU used during warm" "gateways $t_warm_cpu"
line "3 instances: token fetches at start + warm (exactly $N expected)" "$t_start_fetches + $t_warm_fetches"
line "3 instances: RSS after warm" "$(mib "${t_rss_warm[0]}") / $(mib "${t_rss_warm[1]}") / $(mib "${t_rss_warm[2]}") MiB"
line "3 instances: idle CPU, ${IDLE_S} s, each" "${IDLE_CPU[0]} / ${IDLE_CPU[1]} / ${IDLE_CPU[2]} % of a core"
line "3 instances: idle WeChat calls, all three (0 expected)" "$IDLE_CALLS"
line "3 instances: idle store ops/s, gateway counters, each" "${IDLE_STORE[0]} / ${IDLE_STORE[1]} / ${IDLE_STORE[2]}"
line "3 instances: idle store ops, by operation, each" "${IDLE_BY_OP[0]} / ${IDLE_BY_OP[1]} / ${IDLE_BY_OP[2]}"
line "3 instances: idle store ops/s, backend ($STORE), all three" "$IDLE_BACKEND"
line "3 instances: idle store server CPU (Redis only)" "$IDLE_BACKEND_CPU"
check "1 instance: token fetches at start + warm" $((s_start_fetches + s_warm_fetches)) "$N"
check "1 instance: WeChat calls while idle" "$s_idle_calls" 0
check "3 instances: token fetches at start + warm" $((t_start_fetches + t_warm_fetches)) "$N"
check "3 instances: WeChat calls while idle" "$IDLE_CALLS" 0
if [ "$fail" -ne 0 ]; then echo "FAIL: the mock's counts are not exact (see above)"; exit 1; fi
echo "counts exact"
