# shellcheck shell=bash
# The token-free API proxy (sourced by bench/run.sh; uses run, $GW, $MOCK, $KEY, $DURATION).
#
# Two questions: how much throughput the proxy keeps next to a trivial route (the usual ratio,
# `proxy_getcallbackip`), and how much latency it adds to a WeChat call. For the latter the
# same call is made straight to the mock with a valid token (`direct_getcallbackip`, left out
# of the ratio list) and, at low concurrency (4 connections, so queueing does not hide the
# per-call cost), both medians are compared; the line lands in EXTRA_REPORT.

proxy_url="http://$GW/api/v1/accounts/main/wechat/cgi-bin/getcallbackip"
proxy_token=$(curl -fsS -H "Authorization: Bearer $KEY" "http://$GW/api/v1/accounts/main/access_token" |
  sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
direct_url="http://$MOCK/cgi-bin/getcallbackip?access_token=$proxy_token"
for u in "$direct_url" "$proxy_url"; do
  curl -fsS -H "Authorization: Bearer $KEY" "$u" | grep -q '"ip_list"' ||
    { echo "proxy bench: $u does not answer ip_list"; exit 1; }
done

run proxy_getcallbackip "$proxy_url" -H "Authorization: Bearer $KEY"
run direct_getcallbackip "$direct_url"

# wrk's "50%" latency line in milliseconds (wrk prints us, ms or s).
median_ms() {
  awk '$1=="50%" { v=$2
    if (v ~ /us$/) { sub(/us$/, "", v); v = v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v) }
    else if (v ~ /s$/) { sub(/s$/, "", v); v = v * 1000 }
    print v }'
}
lat() { wrk -t1 -c4 -d"${DURATION}s" --latency "$@" | median_ms; }
# Direct before and after the proxied run, so drift on the machine averages out.
d1=$(lat "$direct_url")
p50=$(lat -H "Authorization: Bearer $KEY" "$proxy_url")
d2=$(lat "$direct_url")
proxy_line=$(awk -v d1="$d1" -v d2="$d2" -v p="$p50" 'BEGIN {
  d = (d1 + d2) / 2
  printf "proxy, 4 connections: getcallbackip median %.3f ms direct to the mock, %.3f ms through wxgate - wxgate adds %.3f ms at the median (target < 1 ms)", d, p, p - d }')
echo "$proxy_line"
EXTRA_REPORT="${EXTRA_REPORT:+$EXTRA_REPORT$'\n'}$proxy_line"
export EXTRA_REPORT
