# shellcheck shell=bash
# JS-SDK signing (sourced by bench/run.sh; uses run, $GW).
#
# `GET /jssdk/main/config` for a page on the bench account's js_domains: the ticket comes from
# the credential manager's in-process cache, so each request is a domain check, a fresh nonce,
# one SHA-1 and a small JSON answer. `jssdk_config` is compared with the trivial route (target:
# at least 70 % of its throughput at 64 connections).

jssdk_url="http://$GW/jssdk/main/config?url=https%3A%2F%2Fh5.example.com%2Fpage"
curl -fsS "$jssdk_url" | grep -q '"signature"' ||
  { echo "jssdk bench: $jssdk_url does not answer a signature"; exit 1; }

run jssdk_config "$jssdk_url"
