#!/usr/bin/env bash
# HTTP benchmarks of wxgate with wrk, each next to a trivial axum route measured in the same run
# on the same machine, so the figures read as ratios. Usage: bench/run.sh [seconds] [connections]
# BENCH_STORE=memory:// (or redis://…) measures with another store than the embedded SQLite file.
# BENCH_CASES="jssdk push" runs only those files of bench/cases/ (default: all of them); the
# trivial route and access_token are always measured. The `express` case (bench/cases/express.sh)
# measures the Express JS-SDK server of the original documents (bench/express/, needs node and
# npm, else it is skipped) and reports the JS-SDK route as a multiple of it. The gateway also
# serves one third-party platform (`[[components]]`, with an `[admin] master_key`), which the
# `platform` case registers in the mock and has one merchant authorize
# (bench/platform_scale.sh measures 10 000 of them).
#
# On a small, shared machine two back-to-back runs of the same route can differ by 10 % or
# more, so every case is measured in BENCH_ROUNDS rounds (default 3), each round starting with
# the trivial route; a case's ratio in a round is taken against the trivial runs that open
# that round and the next one, and the median over the rounds is reported, with every
# round's figure beside it.
#
# Beside each throughput the script reports the serving process's CPU time per request (user +
# system, from /proc, over the whole wrk run): wrk shares the two cores, so a slower server also
# changes how much CPU wrk and the kernel's wake-ups get, and the CPU per request is the steadier
# figure to compare changes of the gateway by.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-8}"
CONNS="${2:-64}"
ROUNDS="${BENCH_ROUNDS:-3}"
THREADS=2

command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --bin wxgate --example trivial -q

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

APPID=wx1234567890abcdef
SECRET=bench-secret-0123456789
KEY=bench-api-key-0123456789
C_APPID=wxbenchcomponent01
C_SECRET=bench-component-secret-0123
C_TOKEN=benchcomponenttoken
C_KEY=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG
MOCK=127.0.0.1:19900
GW=127.0.0.1:19901
TRIVIAL=127.0.0.1:19902

target/release/wxgate mock-wechat --listen "$MOCK" --account "$APPID:$SECRET" >"$work/mock.log" 2>&1 & pids+=($!)
MOCK_PID=$!
target/release/examples/trivial "$TRIVIAL" >"$work/trivial.log" 2>&1 & pids+=($!)
TRIVIAL_PID=$!
cat >"$work/wxgate.toml" <<TOML
[server]
listen = "$GW"
[storage]
url = "${BENCH_STORE:-sqlite://$work/wxgate.db}"
[database]
url = "sqlite://$work/wxgate.db"
[upstream]
api_base = "http://$MOCK"
open_base = "http://$MOCK"
[api]
keys = ["$KEY"]
[admin]
master_key = "$(head -c 32 /dev/urandom | base64)"
[[accounts]]
name = "main"
appid = "$APPID"
secret = "$SECRET"
token = "benchtoken"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
js_domains = ["h5.example.com"]
[[accounts.rules]]
keyword = "hello"
reply = { type = "text", content = "world" }
# The third-party platform of the platform case (bench/cases/platform.sh registers it in the mock).
[[components]]
name = "platform"
appid = "$C_APPID"
secret = "$C_SECRET"
token = "$C_TOKEN"
encoding_aes_key = "$C_KEY"
TOML
WXGATE_LOG=warn target/release/wxgate serve --config "$work/wxgate.toml" >"$work/gw.log" 2>&1 & pids+=($!)
GW_PID=$!

wait_up() { for _ in $(seq 1 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "not up: $1"; cat "$work"/*.log; exit 1; }
wait_up "http://$TRIVIAL/"
wait_up "http://$GW/healthz"
curl -fsS -H "Authorization: Bearer $KEY" "http://$GW/api/v1/accounts/main/access_token" >/dev/null

# CPU time (user + system) a process has used, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICKS_PER_S=$(getconf CLK_TCK)

# run NAME URL [wrk args...] -> prints "NAME rps p99 server-CPU-per-request"; the server is the
# trivial one, the mock or wxgate by URL, or the process RUN_PID names (`RUN_PID=… run …`).
run() {
  local name=$1 url=$2; shift 2
  local out pid="${RUN_PID:-}" before after
  [ -n "$pid" ] || case "$url" in
    *"$TRIVIAL"*) pid=$TRIVIAL_PID ;;
    *"$MOCK"*) pid=$MOCK_PID ;;
    *) pid=$GW_PID ;;
  esac
  before=$(cpu_ticks "$pid")
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url")
  after=$(cpu_ticks "$pid")
  local rps p99 errors requests cpu
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  cpu=$(awk -v t=$((after - before)) -v hz="$TICKS_PER_S" -v n="$requests" \
    'BEGIN { printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0) }')
  errors=$(grep -E "Non-2xx|Socket errors" <<<"$out" || true)
  printf '%-28s %12s req/s   p99 %8s   server CPU %6s us/req  %s\n' "$name" "$rps" "$p99" "$cpu" "$errors"
  echo "$rps" >"$work/$name.$ROUND.rps"
  echo "$p99" >"$work/$name.$ROUND.p99"
  echo "$cpu" >"$work/$name.$ROUND.cpu"
}

# median of the numbers on stdin
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }


# ratio NAME: NAME's throughput as a share of the trivial route's, per round against the trivial
# runs that open that round and the next; the median over the rounds, then each round's.
ratio() {
  local name=$1 r shares=() share
  for r in $(seq 1 "$ROUNDS"); do
    [ -e "$work/$name.$r.rps" ] || continue
    share=$(awk -v a="$(cat "$work/$name.$r.rps")" -v b="$(cat "$work/trivial.$r.rps")" \
      -v c="$(cat "$work/trivial.$((r + 1)).rps")" 'BEGIN { printf "%.1f", 200 * a / (b + c) }')
    shares+=("$share")
  done
  printf '%-28s %5.1f%% of the trivial route (median; rounds: %s); server CPU %s us/req (median)\n' "$name" \
    "$(printf '%s\n' "${shares[@]}" | median)" "$(printf '%s%% ' "${shares[@]}")" "$(cpu_median "$name")"
}

# cpu_median NAME: the median server CPU per request of NAME's runs.
cpu_median() { cat "$work/$1".*.cpu | median; }

# compare NAME BASELINE TEXT: NAME's throughput as a share of BASELINE's, both measured in the
# same round (a case registers it in $work/compare); median over the rounds.
compare() {
  local name=$1 base=$2 r shares=()
  shift 2
  for r in $(seq 1 "$ROUNDS"); do
    shares+=("$(awk -v a="$(cat "$work/$name.$r.rps")" -v b="$(cat "$work/$base.$r.rps")" 'BEGIN { printf "%.1f", 100 * a / b }')")
  done
  printf '%s: %.1f%% %s (median; rounds: %s)\n' "$name" "$(printf '%s\n' "${shares[@]}" | median)" "$*" \
    "$(printf '%s%% ' "${shares[@]}")"
}

# multiple NAME BASELINE TEXT: how many times BASELINE's throughput NAME served, both measured
# in the same round (a case registers it in $work/multiple), and their server CPU per request;
# median over the rounds.
multiple() {
  local name=$1 base=$2 r xs=()
  shift 2
  for r in $(seq 1 "$ROUNDS"); do
    xs+=("$(awk -v a="$(cat "$work/$name.$r.rps")" -v b="$(cat "$work/$base.$r.rps")" 'BEGIN { printf "%.1f", a / b }')")
  done
  printf '%s: %.1fx %s (median; rounds: %s); server CPU %s us/req against %s us/req (medians)\n' "$name" \
    "$(printf '%s\n' "${xs[@]}" | median)" "$*" "$(printf '%sx ' "${xs[@]}")" "$(cpu_median "$name")" \
    "$(cpu_median "$base")"
}

echo "wrk: $THREADS threads, $CONNS connections, ${DURATION}s each, $ROUNDS rounds, $(nproc) cores"
: >"$work/compare"
: >"$work/multiple"
for ROUND in $(seq 1 "$ROUNDS"); do
  echo "-- round $ROUND"
  run trivial "http://$TRIVIAL/"
  run access_token "http://$GW/api/v1/accounts/main/access_token" -H "Authorization: Bearer $KEY"
  # Each feature's cases (bench/cases/*.sh) use run, $GW, $MOCK, $KEY, $APPID, $work.
  for case in bench/cases/*.sh; do
    [ -e "$case" ] || continue
    if [ -n "${BENCH_CASES:-}" ] && ! grep -qw "$(basename "$case" .sh)" <<<"$BENCH_CASES"; then
      continue
    fi
    # shellcheck source=/dev/null
    source "$case"
  done
done
ROUND=$((ROUNDS + 1))
echo "-- closing trivial run"
run trivial "http://$TRIVIAL/"
echo
printf '%-28s server CPU %s us/req (median)\n' trivial "$(cpu_median trivial)"
ratio access_token
for f in "$work"/*.1.rps; do
  n=$(basename "$f" .1.rps)
  case "$n" in trivial|access_token|direct_*) ;; *) ratio "$n" ;; esac
done
sort -u "$work/compare" | while read -r name base text; do compare "$name" "$base" "$text"; done
sort -u "$work/multiple" | while read -r name base text; do multiple "$name" "$base" "$text"; done
[ -z "${EXTRA_REPORT:-}" ] || printf '%s\n' "$EXTRA_REPORT"
