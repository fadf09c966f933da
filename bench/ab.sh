#!/usr/bin/env bash
# Paired A/B of two wxgate binaries: both gateways up on one mock (SQLite stores), wrk
# alternating between them on the JS-SDK config route and access_token, with server CPU per
# request from /proc. A change is judged by the ratio of the two in the same run, which a
# small, noisy machine gives far more steadily than two separate bench/run.sh runs.
# Usage: bench/ab.sh OLD_BIN NEW_BIN [pairs] [seconds]
set -euo pipefail
OLD=$1; NEW=$2; PAIRS=${3:-4}; SECS=${4:-6}
W=$(mktemp -d)
APPID=wx1234567890abcdef; SECRET=bench-secret-0123456789; KEY=bench-api-key-0123456789
$NEW mock-wechat --listen 127.0.0.1:19920 --account "$APPID:$SECRET" >$W/mock.log 2>&1 & MP=$!
pids=($MP)
for side in old new; do
  port=$([ $side = old ] && echo 19921 || echo 19922)
  cat >$W/$side.toml <<T
[server]
listen = "127.0.0.1:$port"
[storage]
url = "sqlite://$W/$side.db"
[database]
url = "sqlite://$W/$side.db"
[upstream]
api_base = "http://127.0.0.1:19920"
open_base = "http://127.0.0.1:19920"
[api]
keys = ["$KEY"]
[[accounts]]
name = "main"
appid = "$APPID"
secret = "$SECRET"
js_domains = ["h5.example.com"]
T
done
$OLD serve --config $W/old.toml >$W/old.log 2>&1 & OP=$!; pids+=($OP)
$NEW serve --config $W/new.toml >$W/new.log 2>&1 & NP=$!; pids+=($NP)
trap 'kill ${pids[@]} 2>/dev/null; rm -rf $W' EXIT
sleep 1.5
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
URLQ='url=https%3A%2F%2Fh5.example.com%2Fpage%3Fa%3D1'
for p in 19921 19922; do curl -sf "http://127.0.0.1:$p/jssdk/main/config?$URLQ" >/dev/null; curl -sf -H "Authorization: Bearer $KEY" http://127.0.0.1:$p/api/v1/accounts/main/access_token >/dev/null; done
declare -A RPS CPU
for route in jssdk token; do
  for i in $(seq 1 $PAIRS); do
    for side in old new; do
      port=$([ $side = old ] && echo 19921 || echo 19922); pid=$([ $side = old ] && echo $OP || echo $NP)
      if [ $route = jssdk ]; then url="http://127.0.0.1:$port/jssdk/main/config?$URLQ"; hdr=(); else url="http://127.0.0.1:$port/api/v1/accounts/main/access_token"; hdr=(-H "Authorization: Bearer $KEY"); fi
      c0=$(cpu $pid)
      out=$(wrk -t2 -c64 -d${SECS}s "${hdr[@]}" "$url" 2>&1)
      c1=$(cpu $pid)
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}'); n=$(echo "$out" | awk '/requests in/ {print $1}')
      us=$(awk -v a=$c0 -v b=$c1 -v n=$n 'BEGIN{printf "%.2f", (b-a)*10000/n}')
      echo "$route $side pair$i rps=$rps cpu_us=$us"
      RPS[$route.$side]="${RPS[$route.$side]:-} $rps"; CPU[$route.$side]="${CPU[$route.$side]:-} $us"
    done
  done
  o=$(echo ${RPS[$route.old]} | tr ' ' '\n' | awk '{s+=$1} END{print s}'); n=$(echo ${RPS[$route.new]} | tr ' ' '\n' | awk '{s+=$1} END{print s}')
  oc=$(echo ${CPU[$route.old]} | tr ' ' '\n' | awk '{s+=$1} END{print s/NR}'); nc=$(echo ${CPU[$route.new]} | tr ' ' '\n' | awk '{s+=$1} END{print s/NR}')
  awk -v o=$o -v n=$n -v oc=$oc -v nc=$nc -v r=$route 'BEGIN{printf "== %s: new/old throughput %.1f %%; CPU/request old %.2f us new %.2f us (%.1f %%)\n", r, 100*n/o, oc, nc, 100*nc/oc}'
done
