# shellcheck shell=bash
# The baseline of the JS-SDK route: the Express design of the original documents
# (bench/express/server.js — seed 002: the jsapi_ticket and access_token kept in Redis with
# WeChat's expires_in, so each request is one Redis GET, a Math.random nonce, one SHA-1 and
# `res.json`; one `node` process), on the same mock WeChat, measured with the same wrk command
# and the same URL shape as `jssdk_config` (which this case runs itself when the jssdk case is
# not selected). The report gives both as shares of the trivial route and wxgate's throughput
# as a multiple of Express's (target: at least 10x), each round's figures paired.
#
# EXPRESS_CACHE=memory (seed 001's node-cache) or none (seed 000: a token and a ticket fetched
# for every request) measures the documents' other designs; EXPRESS_REDIS_URL picks the Redis
# (default redis://127.0.0.1:6379/15; the keys carry the run's pid, so each run fetches from
# its own mock). Skipped, with the reason, when node or npm is missing, `npm ci` fails or the
# server does not come up (e.g. no Redis). Server CPU is the node process's; Redis's own CPU
# is not counted.
# Sourced by bench/run.sh once per round (uses run, $GW, $MOCK, $APPID, $SECRET, $work, pids).

EXPRESS=127.0.0.1:19903
express_cache="${EXPRESS_CACHE:-redis}"
express_name="express_${express_cache}_jssdk_config"
express_url="http://$EXPRESS/jssdk/main/config?url=https%3A%2F%2Fh5.example.com%2Fpage"

# The first round installs and starts the server; later rounds reuse it (or skip again).
if [ -z "${EXPRESS_STATE:-}" ]; then
  EXPRESS_STATE=skip
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "express: skipped: node and npm are needed (Node.js 18 or later)"
  elif ! (cd bench/express && npm ci --no-audit --no-fund --loglevel=error) >"$work/npm.log" 2>&1; then
    echo "express: skipped: npm ci failed in bench/express:"; tail -n 5 "$work/npm.log"
  else
    PORT="${EXPRESS#*:}" WECHAT_API_BASE="http://$MOCK/cgi-bin" APPID="$APPID" APPSECRET="$SECRET" \
      REDIS_URL="${EXPRESS_REDIS_URL:-redis://127.0.0.1:6379/15}" REDIS_PREFIX="wxgate-bench-express:$$:" \
      EXPRESS_CACHE="$express_cache" \
      node bench/express/server.js >"$work/express.log" 2>&1 &
    EXPRESS_PID=$!
    pids+=("$EXPRESS_PID")
    for _ in $(seq 1 100); do
      kill -0 "$EXPRESS_PID" 2>/dev/null || break
      if [[ "$(curl -fsS "$express_url" 2>/dev/null || true)" == *'"signature"'* ]]; then
        EXPRESS_STATE=up
        break
      fi
      sleep 0.1
    done
    if [ "$EXPRESS_STATE" != up ]; then
      echo "express: skipped: the server did not answer a signature on $express_url:"
      tail -n 5 "$work/express.log"
    else
      echo "express: node $(node --version), cache $express_cache, pid $EXPRESS_PID"
      echo "jssdk_config $express_name the throughput of the Express design of the documents (cache: $express_cache)" >>"$work/multiple"
    fi
  fi
fi

if [ "$EXPRESS_STATE" = up ]; then
  RUN_PID=$EXPRESS_PID run "$express_name" "$express_url"
  if [ -n "${BENCH_CASES:-}" ] && ! grep -qw jssdk <<<"$BENCH_CASES"; then
    # shellcheck source=bench/cases/jssdk.sh
    source bench/cases/jssdk.sh
  fi
fi
