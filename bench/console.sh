#!/usr/bin/env bash
# The admin console at scale: its pages must answer in under 50 ms with N accounts (default
# 10 000, issue #23). One gateway (release build) with N `[[accounts]]`, every account's token
# fetched once through the mock (so every health line has a credential to judge), an admin
# session opened with curl; then each page is asked CONSOLE_ROUNDS times (default 30) one after
# another, and its median and slowest answer printed (curl's time_total, in ms), beside
# `/healthz` measured the same way (the floor of a request on this machine). Exit 1 when a
# page's median is 50 ms or more.
#
# Usage: bench/console.sh [N]    (CONSOLE_BIN: a wxgate binary instead of building the release
#   one; CONSOLE_ROUNDS; ports 19930-19931)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
ROUNDS="${CONSOLE_ROUNDS:-30}"
[ "$N" -ge 2 ] 2>/dev/null || { echo "console: N must be a number ≥ 2" >&2; exit 2; }
command -v jq >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq jq; }
if [ -n "${CONSOLE_BIN:-}" ]; then
  BIN=$CONSOLE_BIN
else
  cargo build --release --bin wxgate --example trivial -q
  BIN=target/release/wxgate
fi

work=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
die() { echo "console: $*" >&2; for f in "$work"/*.log; do [ -e "$f" ] || continue; echo "== $f" >&2; tail -n 20 "$f" >&2; done; exit 1; }
wait_ok() { for _ in $(seq 1 1200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done; die "not up: $1"; }

MOCK=127.0.0.1:19930
GW=127.0.0.1:19931
KEY=console-bench-api-key-0123456789
ADMIN=console-bench-admin-key-0123456789
# shellcheck source=bench/lib/accounts.sh
. bench/lib/accounts.sh

"$BIN" mock-wechat --listen "$MOCK" >"$work/mock.log" 2>&1 &
PIDS+=($!)
wait_ok "http://$MOCK/__mock/calls"
bad=$(register_accounts "$N" "$MOCK" "$work")
[ "$bad" -eq 0 ] || die "$bad of $N accounts not registered in the mock"
accounts_toml "$N" "$work/accounts.toml"
{
  printf '[server]\nlisten = "%s"\npublic_url = "http://%s"\n' "$GW" "$GW"
  printf '[storage]\nurl = "sqlite://%s/store.db"\n[database]\nurl = "sqlite://%s/db.db"\n' "$work" "$work"
  printf '[upstream]\napi_base = "http://%s"\nopen_base = "http://%s"\nmp_base = "http://%s"\n' "$MOCK" "$MOCK" "$MOCK"
  printf '[api]\nkeys = ["%s"]\n[admin]\nkeys = ["%s"]\nmaster_key = "%s"\n\n' "$KEY" "$ADMIN" "$(head -c 32 /dev/urandom | base64)"
  cat "$work/accounts.toml"
} >"$work/gateway.toml"
WXGATE_LOG=warn "$BIN" serve --config "$work/gateway.toml" >"$work/gateway.log" 2>&1 &
PIDS+=($!)
wait_ok "http://$GW/readyz"

# Every account's token once, 64 at a time.
awk -v n="$N" -v gw="$GW" -v key="$KEY" 'BEGIN { for (i = 1; i <= n; i++) {
  if (i > 1) print "next"
  printf "url = \"http://%s/api/v1/accounts/a%06d/access_token\"\nheader = \"Authorization: Bearer %s\"\n", gw, i, key
  print "output = \"/dev/null\"\nwrite-out = \"%{http_code}\\n\"" } }' >"$work/warm.curl"
bad=$(curl -sS --no-progress-meter --parallel --parallel-max 64 -K "$work/warm.curl" 2>>"$work/curl.log" | grep -vc '^200$' || true)
[ "$bad" -eq 0 ] || die "$bad of $N tokens not fetched"

jar="$work/cookies"
curl -fsS -c "$jar" -o /dev/null -d "key=$ADMIN" "http://$GW/admin/sign-in"

mid=$(printf 'a%06d' $((N / 2)))
pages=(
  "/healthz"
  "/admin/overview"
  "/admin/overview?page=$((N / 100))"
  "/admin/overview?q=${mid:0:5}"
  "/admin/overview?health=failing"
  "/admin/accounts/$mid"
  "/admin/onboard/$mid"
  "/admin/keys"
)
printf '\n%s accounts, %s rounds per page (ms; curl time_total, sequential)\n' "$N" "$ROUNDS"
printf '%-40s %8s %8s %10s\n' page median slowest "× healthz"
floor=
slow=0
for page in "${pages[@]}"; do
  for _ in $(seq 1 "$ROUNDS"); do
    code_ms=$(curl -sS -b "$jar" -o /dev/null -w '%{http_code} %{time_total}\n' "http://$GW$page")
    [ "${code_ms%% *}" = 200 ] || die "$page answered ${code_ms%% *}"
    echo "${code_ms#* }"
  done | sort -n | awk '{ v[NR] = $1 * 1000 } END { printf "%.2f %.2f\n", v[int((NR + 1) / 2)], v[NR] }' >"$work/t"
  read -r median slowest <"$work/t"
  [ -n "$floor" ] || floor=$median
  ratio=$(awk -v a="$median" -v b="$floor" 'BEGIN { printf "%.1f", a / b }')
  printf '%-40s %8s %8s %10s\n' "$page" "$median" "$slowest" "$ratio"
  if [ "$page" != /healthz ] && awk -v m="$median" 'BEGIN { exit !(m >= 50) }'; then slow=1; fi
done
[ "$slow" -eq 0 ] || die "a console page's median is 50 ms or more"
