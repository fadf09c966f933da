#!/usr/bin/env bash
# Third-party platforms at scale: N authorizers (default 10 000) of one platform on one
# gateway, with exact counts of what the gateway asks WeChat (the mock) for.
#
#   1. The mock and a gateway with one `[[components]]` (SQLite store and SQLite database in a
#      temp dir); the component is registered in the mock with the gateway's event URL and a
#      ticket pushed. N merchants authorize it (`/__mock/component/authorize_directly` with
#      `push`: the mock pushes `authorized`, the gateway exchanges the code with
#      `api_query_auth`, records the authorizer and reads its profile), in batches, each
#      awaited before the next; the time per 1 000 is printed as n grows, so a cost that grows
#      with the number of authorizers shows. Authorizing stops early (and says so) after
#      PLATFORM_MAX_AUTH_S seconds (default 300); the rest runs with the authorizers made.
#   2. The exchange also stores an access token per authorizer, so to get N COLD authorizers
#      the gateway is stopped and started again on a fresh store file and the same database
#      (refresh tokens live in the database, tokens and the ticket in the store); a ticket is
#      pushed again.
#   3. Cold round: every authorizer's access_token requested once, 64 at a time (curl
#      --parallel). The mock must count exactly N `cgi-bin/component/api_authorizer_token`
#      calls and exactly 1 `api_component_token` call for it; the script exits 1 otherwise.
#   4. Warm rounds: the N tokens requested again once each (curl), then wrk cycling through
#      the appids (2 threads, 64 connections) next to the same wrk script cycling through the
#      one config account `main`, three pairs in turn; the mock must count no platform call
#      more.
#   5. Memory (VmRSS) and CPU (utime + stime from /proc/PID/stat) of the gateway: RSS before
#      any authorizer, after authorizing N, with N authorizers idle (restarted, nothing cached),
#      after the cold round, after the warm rounds; CPU over PLATFORM_IDLE_S seconds (default
#      10) of idling with nothing cached and with N tokens cached.
#
# Usage: bench/platform_scale.sh [N]   (release build; PLATFORM_BATCH=200 authorizations per
# batch; PLATFORM_WARM_S=8 seconds per wrk run; PLATFORM_STORE=memory for the in-process store
# instead of SQLite files). Ports 19910-19911.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
BATCH="${PLATFORM_BATCH:-200}"
MAX_AUTH_S="${PLATFORM_MAX_AUTH_S:-300}"
IDLE_S="${PLATFORM_IDLE_S:-10}"
WARM_S="${PLATFORM_WARM_S:-8}"
CONNS=64

command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v jq >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq jq; }
# Built as bench/run.sh builds it (the example's dev-dependencies unify features), so the two
# scripts share one binary instead of rebuilding it in turn.
cargo build --release --bin wxgate --example trivial -q
BIN=target/release/wxgate

work=$(mktemp -d)
MOCK_PID=
GW_PID=
cleanup() {
  for p in $GW_PID $MOCK_PID; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

APPID=wx1234567890abcdef
SECRET=bench-secret-0123456789
KEY=bench-api-key-0123456789
C_APPID=wxbenchcomponent01
C_SECRET=bench-component-secret-0123
C_TOKEN=benchcomponenttoken
C_KEY=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG
MOCK=127.0.0.1:19910
GW=127.0.0.1:19911
TICKS_PER_S=$(getconf CLK_TCK)
MASTER_KEY=$(head -c 32 /dev/urandom | base64)

die() { echo "platform_scale: $*" >&2; for f in "$work"/*.log; do echo "== $f" >&2; tail -n 20 "$f" >&2; done; exit 1; }
now_ms() { date +%s%3N; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# calls ENDPOINT: how many times the mock was called at ENDPOINT (e.g. cgi-bin/component/api_query_auth).
calls() { curl -fsS "http://$MOCK/__mock/calls" | jq --arg e "$1" '.[$e] // 0'; }
wait_up() { for _ in $(seq 1 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; die "not up: $1"; }

for port in "$MOCK" "$GW"; do
  ! curl -s -o /dev/null "http://$port/" || die "$port is in use (another run of this script?)"
done
"$BIN" mock-wechat --listen "$MOCK" --account "$APPID:$SECRET" >"$work/mock.log" 2>&1 &
MOCK_PID=$!
wait_up "http://$MOCK/__mock/calls"

# store_url FILE: the store of one gateway's life (PLATFORM_STORE=memory: the in-process store,
# empty at every start, to tell the SQLite store's share of memory and idle CPU).
store_url() { if [ "${PLATFORM_STORE:-sqlite}" = memory ]; then echo "memory://"; else echo "sqlite://$1"; fi; }

# start_gateway STORE_FILE: a gateway on that store and the shared database file.
start_gateway() {
  cat >"$work/wxgate.toml" <<TOML
[server]
listen = "$GW"
[storage]
url = "$(store_url "$1")"
[database]
url = "sqlite://$work/database.db"
[upstream]
api_base = "http://$MOCK"
open_base = "http://$MOCK"
mp_base = "http://$MOCK"
[api]
keys = ["$KEY"]
[admin]
master_key = "$MASTER_KEY"
[[accounts]]
name = "main"
appid = "$APPID"
secret = "$SECRET"
[[components]]
name = "platform"
appid = "$C_APPID"
secret = "$C_SECRET"
token = "$C_TOKEN"
encoding_aes_key = "$C_KEY"
TOML
  WXGATE_LOG=warn "$BIN" serve --config "$work/wxgate.toml" >>"$work/gateway.log" 2>&1 &
  GW_PID=$!
  wait_up "http://$GW/healthz"
  kill -0 "$GW_PID" 2>/dev/null || die "the gateway exited"
}

stop_gateway() {
  kill -TERM "$GW_PID"
  wait "$GW_PID" 2>/dev/null || true
  GW_PID=
}

# push_ticket: a component_verify_ticket pushed to the gateway, which must answer success.
push_ticket() {
  local answer
  answer=$(curl -fsS -H 'Content-Type: application/json' \
    -d "{\"component_appid\":\"$C_APPID\"}" "http://$MOCK/__mock/component/push_ticket")
  [ "$(jq -r '"\(.status) \(.body)"' <<<"$answer")" = "200 success" ] || die "ticket push answered $answer"
}

# idle_cpu SECONDS: the gateway's CPU use while nobody calls it, in % of one core.
idle_cpu() {
  local before after
  before=$(cpu_ticks "$GW_PID")
  sleep "$1"
  after=$(cpu_ticks "$GW_PID")
  awk -v t=$((after - before)) -v hz="$TICKS_PER_S" -v s="$1" 'BEGIN { printf "%.2f", 100 * t / hz / s }'
}

# request_all NAME: every authorizer's access_token once, 64 at a time; fails unless all N
# answered a token. Prints the seconds it took.
request_all() {
  local started ended tokens
  started=$(now_ms)
  tokens=$(curl -sS --parallel --parallel-max 64 -K "$work/tokens.curl" 2>>"$work/curl.log" | grep -o '"access_token":"' | wc -l)
  ended=$(now_ms)
  [ "$tokens" -eq "$N" ] || die "$1: $tokens of $N requests answered a token"
  awk -v ms=$((ended - started)) 'BEGIN { printf "%.2f", ms / 1000 }'
}

# --- 1. authorize N merchants ---------------------------------------------------------------
start_gateway "$work/store-1.db"
curl -fsS -H 'Content-Type: application/json' -d "{\"appid\":\"$C_APPID\",\"secret\":\"$C_SECRET\",\"token\":\"$C_TOKEN\",\"encoding_aes_key\":\"$C_KEY\",\"push_url\":\"http://$GW/wx/component/platform\"}" \
  "http://$MOCK/__mock/components" >/dev/null
push_ticket
curl -fsS -H "Authorization: Bearer $KEY" "http://$GW/api/v1/components/platform/access_token" >/dev/null
curl -fsS -H "Authorization: Bearer $KEY" "http://$GW/api/v1/accounts/main/access_token" >/dev/null
sleep 1
rss_empty=$(rss_kb "$GW_PID")
idle_empty=$(idle_cpu "$IDLE_S")
echo "gateway with no authorizer: RSS $((rss_empty / 1024)) MiB, idle CPU ${idle_empty} % of a core"

appid_of() { printf 'wxbench%011d' "$1"; }
echo "authorizing up to $N merchants, $BATCH per batch (the mock pushes \`authorized\`, the gateway exchanges each code)"
auth_started=$(now_ms)
block_started=$auth_started
made=0
while [ "$made" -lt "$N" ]; do
  upto=$((made + BATCH > N ? N : made + BATCH))
  : >"$work/authorize.curl"
  for i in $(seq $((made + 1)) "$upto"); do
    [ "$i" -eq $((made + 1)) ] || echo next >>"$work/authorize.curl"
    printf 'url = "http://%s/__mock/component/authorize_directly"\nheader = "Content-Type: application/json"\ndata = "{\\"component_appid\\":\\"%s\\",\\"authorizer_appid\\":\\"%s\\",\\"nick_name\\":\\"bench %s\\",\\"push\\":true}"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
      "$MOCK" "$C_APPID" "$(appid_of "$i")" "$i" >>"$work/authorize.curl"
  done
  bad=$(curl -sS --parallel --parallel-max 8 -K "$work/authorize.curl" 2>>"$work/curl.log" | grep -vc '^200$' || true)
  [ "$bad" -eq 0 ] || die "$bad authorize_directly calls failed"
  # Awaited: the profile read (api_get_authorizer_info) is the gateway's last call per authorization.
  deadline=$(($(now_ms) + 120000))
  while [ "$(calls cgi-bin/component/api_get_authorizer_info)" -lt "$upto" ]; do
    [ "$(now_ms)" -lt "$deadline" ] || die "the gateway recorded $(calls cgi-bin/component/api_get_authorizer_info) of $upto authorizations within 120 s"
    sleep 0.05
  done
  made=$upto
  if [ $((made % 1000)) -eq 0 ] || [ "$made" -eq "$N" ]; then
    t=$(now_ms)
    printf '  %6d authorized: %6.1f s in all, the last %d in %5.1f s (%s/s)\n' "$made" \
      "$(awk -v ms=$((t - auth_started)) 'BEGIN { print ms / 1000 }')" $((made % 1000 == 0 ? 1000 : made % 1000)) \
      "$(awk -v ms=$((t - block_started)) 'BEGIN { print ms / 1000 }')" \
      "$(awk -v ms=$((t - block_started)) -v n=$((made % 1000 == 0 ? 1000 : made % 1000)) 'BEGIN { printf "%.0f", n * 1000 / ms }')"
    block_started=$t
    if [ "$made" -lt "$N" ] && [ $(((t - auth_started) / 1000)) -ge "$MAX_AUTH_S" ]; then
      echo "  stopped after ${MAX_AUTH_S} s (PLATFORM_MAX_AUTH_S): going on with $made authorizers instead of $N"
      N=$made
    fi
  fi
done
auth_s=$(awk -v ms=$(($(now_ms) - auth_started)) 'BEGIN { printf "%.1f", ms / 1000 }')
authorized=$(curl -fsS -H "Authorization: Bearer $KEY" "http://$GW/api/v1/components/platform/status" | jq '.authorizers.authorized')
[ "$authorized" -eq "$N" ] || die "the gateway counts $authorized authorized, not $N"
query_auth=$(calls cgi-bin/component/api_query_auth)
[ "$query_auth" -eq "$N" ] || die "$query_auth api_query_auth calls for $N authorizations"
sleep 3
rss_authorized=$(rss_kb "$GW_PID")
echo "authorized $N in $auth_s s; api_query_auth calls: $query_auth; RSS after: $((rss_authorized / 1024)) MiB"

# --- 2. the same authorizers, cold ---------------------------------------------------------
stop_gateway
start_gateway "$work/store-2.db"
push_ticket
sleep 2
rss_idle=$(rss_kb "$GW_PID")
idle_cold=$(idle_cpu "$IDLE_S")
echo "restarted on a fresh store: RSS $((rss_idle / 1024)) MiB with $N authorizers, idle CPU ${idle_cold} % of a core (nothing cached)"

: >"$work/tokens.curl"
: >"$work/appids"
{
  echo "header = \"Authorization: Bearer $KEY\""
  for i in $(seq 1 "$N"); do
    a=$(appid_of "$i")
    echo "$a" >>"$work/appids"
    echo "url = \"http://$GW/api/v1/accounts/$a/access_token\""
  done
} >"$work/tokens.curl"

# --- 3. cold round -------------------------------------------------------------------------
tok0=$(calls cgi-bin/component/api_authorizer_token)
comp0=$(calls cgi-bin/component/api_component_token)
cold_s=$(request_all "cold round")
tok1=$(calls cgi-bin/component/api_authorizer_token)
comp1=$(calls cgi-bin/component/api_component_token)
sleep 2
rss_cold=$(rss_kb "$GW_PID")
echo "cold round: $N requests in $cold_s s ($(awk -v s="$cold_s" -v n="$N" 'BEGIN { printf "%.0f", n / s }')/s); api_authorizer_token calls: $((tok1 - tok0)), api_component_token calls: $((comp1 - comp0))"
metrics_started=$(now_ms)
metrics_page=$(curl -fsS "http://$GW/metrics")
metrics_ms=$(($(now_ms) - metrics_started))
metrics_lines=$(wc -l <<<"$metrics_page")
metrics_kib=$(($(wc -c <<<"$metrics_page") / 1024))
echo "GET /metrics with $N tokens cached: $metrics_lines lines, $metrics_kib KiB, $metrics_ms ms"
fail=0
[ $((tok1 - tok0)) -eq "$N" ] || { echo "FAIL: $((tok1 - tok0)) api_authorizer_token calls for $N cold authorizers, not exactly $N"; fail=1; }
[ $((comp1 - comp0)) -eq 1 ] || { echo "FAIL: $((comp1 - comp0)) api_component_token calls, not exactly 1"; fail=1; }

# --- 4. warm rounds ------------------------------------------------------------------------
warm_s=$(request_all "warm round")
echo "warm round (curl, each once): $N requests in $warm_s s"
# cycle.lua (CYCLE_FILE=names): requests cycling through the account names of the file. The account
# main is measured with the same script over a one-line file, so wrk spends the same CPU per
# request on both (it shares the two cores with the gateway).
echo main >"$work/main"
cat >"$work/cycle.lua" <<LUA
local names = {}
local file = os.getenv("CYCLE_FILE")
for line in io.lines(file) do names[#names + 1] = line end
local i = 0
local headers = { ["Authorization"] = "Bearer $KEY" }
function init(args) i = math.random(#names) - 1 end
function request()
  i = i % #names + 1
  return wrk.format("GET", "/api/v1/accounts/" .. names[i] .. "/access_token", headers)
end
LUA
# wrk_rps NAME [args] URL: "req/s gateway-CPU-us-per-request" of one wrk run; fails on any
# non-2xx answer.
wrk_rps() {
  local name=$1 out before after
  shift
  before=$(cpu_ticks "$GW_PID")
  out=$(wrk -t2 -c"$CONNS" -d"${WARM_S}s" "$@")
  after=$(cpu_ticks "$GW_PID")
  if grep -qE "Non-2xx|Socket errors" <<<"$out"; then die "$name: $(grep -E 'Non-2xx|Socket errors' <<<"$out")"; fi
  awk -v t=$((after - before)) -v hz="$TICKS_PER_S" '/Requests\/sec/ { rps = $2 } /requests in/ { n = $1 }
    END { printf "%s %.1f\n", rps, (n > 0 ? t * 1e6 / hz / n : 0) }' <<<"$out"
}
ratios=()
for r in 1 2 3; do
  read -r main_rps main_cpu < <(CYCLE_FILE="$work/main" wrk_rps main -s "$work/cycle.lua" "http://$GW/")
  read -r auth_rps auth_cpu < <(CYCLE_FILE="$work/appids" wrk_rps authorizers -s "$work/cycle.lua" "http://$GW/")
  ratio=$(awk -v a="$auth_rps" -v b="$main_rps" 'BEGIN { printf "%.1f", 100 * a / b }')
  ratios+=("$ratio")
  echo "warm round $r (wrk, $CONNS connections, ${WARM_S} s): authorizers cycled $auth_rps req/s ($auth_cpu us of gateway CPU per request), account main $main_rps req/s ($main_cpu us): $ratio %"
done
tok2=$(calls cgi-bin/component/api_authorizer_token)
comp2=$(calls cgi-bin/component/api_component_token)
echo "after the warm rounds: api_authorizer_token calls $((tok2 - tok1)) more, api_component_token calls $((comp2 - comp1)) more"
[ "$tok2" -eq "$tok1" ] || { echo "FAIL: warm rounds called api_authorizer_token $((tok2 - tok1)) times"; fail=1; }
[ "$comp2" -eq "$comp1" ] || { echo "FAIL: warm rounds called api_component_token $((comp2 - comp1)) times"; fail=1; }
sleep 2
rss_warm=$(rss_kb "$GW_PID")
idle_warm=$(idle_cpu "$IDLE_S")

# --- 5. report -----------------------------------------------------------------------------
per() { awk -v a="$1" -v b="$2" -v n="$N" 'BEGIN { printf "%.2f", (a - b) / n }'; }
echo
echo "== third-party platform, $N authorizers, ${PLATFORM_STORE:-sqlite} store ($(nproc) cores, $(date -u +%Y-%m-%d))"
echo "authorize $N (event push, api_query_auth, profile):  $auth_s s"
echo "cold round ($N first token requests, 64 at a time):   $cold_s s; $((tok1 - tok0)) api_authorizer_token calls (exactly $N expected), $((comp1 - comp0)) api_component_token (exactly 1)"
echo "warm rounds (wrk cycling through the $N appids):      $(printf '%s\n' "${ratios[@]}" | sort -n | sed -n 2p) % of account main's req/s (median; pairs: $(printf '%s %% ' "${ratios[@]}")), $((tok2 - tok1 + comp2 - comp1)) platform calls (0 expected)"
echo "RSS: no authorizer $((rss_empty / 1024)) MiB; after authorizing $((rss_authorized / 1024)) MiB; restarted, $N idle $((rss_idle / 1024)) MiB ($(per "$rss_idle" "$rss_empty") KiB per authorizer);"
echo "     after the cold round $((rss_cold / 1024)) MiB (+$(per "$rss_cold" "$rss_idle") KiB per cached token); after the warm rounds $((rss_warm / 1024)) MiB"
echo "GET /metrics after the cold round: $metrics_lines lines, $metrics_kib KiB, answered in $metrics_ms ms"
echo "idle CPU over ${IDLE_S} s: no authorizer ${idle_empty} %, $N authorizers nothing cached ${idle_cold} %, $N tokens cached ${idle_warm} % of one core"
if [ "$fail" -ne 0 ]; then echo "FAIL: the mock's call counts are not exact (see above)"; exit 1; fi
echo "call counts exact"
