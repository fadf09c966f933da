# shellcheck shell=bash disable=SC2154 # $work, $GW, … are set by bench/run.sh, which sources this
# Third-party platforms: an authorizer's access_token next to a config account's.
#
# An authorizer (a merchant's account that authorized the bench's `[[components]]` platform) is
# served as an account named by its appid, its token coming from the same credential manager
# as `main`'s. The first round registers the platform in the mock with the gateway's event URL,
# pushes a component_verify_ticket, and has one merchant authorize (`authorize_directly` with
# `push`: the gateway exchanges the code with api_query_auth, which also hands it the
# authorizer's first access token). Every round then measures
# `GET /api/v1/accounts/<authorizer appid>/access_token` (`authorizer_access_token`), and the
# report gives its throughput as a share of `access_token` (the account `main`) measured
# before it in the same round, and of main's token measured again right after it
# (`direct_account_token_after`) — the question being whether an authorizer's token costs the
# same order as an account's. The mock's platform call counts are printed after each run: the token the
# exchange brought is served, nothing more is fetched.
# Sourced by bench/run.sh (uses run, $GW, $MOCK, $KEY, $C_APPID…, $work).

PLATFORM_AUTHORIZER=wxbenchauthorizer1
platform_url="http://$GW/api/v1/accounts/$PLATFORM_AUTHORIZER/access_token"

if [ -z "${PLATFORM_STATE:-}" ]; then
  curl -fsS -H 'Content-Type: application/json' \
    -d "{\"appid\":\"$C_APPID\",\"secret\":\"$C_SECRET\",\"token\":\"$C_TOKEN\",\"encoding_aes_key\":\"$C_KEY\",\"push_url\":\"http://$GW/wx/component/platform\"}" \
    "http://$MOCK/__mock/components" >/dev/null
  platform_ticket=$(curl -fsS -H 'Content-Type: application/json' -d "{\"component_appid\":\"$C_APPID\"}" \
    "http://$MOCK/__mock/component/push_ticket")
  [[ "$platform_ticket" == *'"status":200'* && "$platform_ticket" == *'"body":"success"'* ]] ||
    { echo "platform bench: the ticket push was answered $platform_ticket"; exit 1; }
  curl -fsS -H 'Content-Type: application/json' \
    -d "{\"component_appid\":\"$C_APPID\",\"authorizer_appid\":\"$PLATFORM_AUTHORIZER\",\"nick_name\":\"bench\",\"push\":true}" \
    "http://$MOCK/__mock/component/authorize_directly" >/dev/null
  # The push is delivered in the background: wait until the gateway serves the authorizer.
  for _ in $(seq 1 100); do
    if curl -fsS -H "Authorization: Bearer $KEY" "$platform_url" 2>/dev/null | grep -q '"access_token"'; then
      PLATFORM_STATE=up
      break
    fi
    sleep 0.1
  done
  [ "${PLATFORM_STATE:-}" = up ] || { echo "platform bench: $platform_url answers no token"; exit 1; }
  echo "authorizer_access_token access_token of the account token (main's access_token, measured before it in the same round)" >>"$work/compare"
  echo "authorizer_access_token direct_account_token_after of the account token (main's access_token, measured right after it)" >>"$work/compare"
fi

run authorizer_access_token "$platform_url" -H "Authorization: Bearer $KEY"
# main's token again, so the authorizer's run is bracketed by two runs of the account's: a
# machine that slows down under sustained load (docs/performance.md) favours the first run.
run direct_account_token_after "http://$GW/api/v1/accounts/main/access_token" -H "Authorization: Bearer $KEY"
platform_calls=$(curl -fsS "http://$MOCK/__mock/calls")
# platform_count ENDPOINT: the mock's count of ENDPOINT in $platform_calls (0 when absent).
platform_count() { grep -o "\"cgi-bin/component/$1\":[0-9]*" <<<"$platform_calls" | cut -d: -f2 || echo 0; }
printf '%-28s mock calls so far: api_query_auth %s, api_authorizer_token %s, api_component_token %s\n' "" \
  "$(platform_count api_query_auth)" "$(platform_count api_authorizer_token)" "$(platform_count api_component_token)"
