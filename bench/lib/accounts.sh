# Sourced by bench/scale.sh and bench/console.sh: N generated accounts (names a000001…, appids
# wxscale00000000001…, one AppSecret each) as `[[accounts]]` tables, and their registration in
# the mock (`POST /__mock/accounts`; the mock refuses unknown appids).

# accounts_toml N FILE: the N `[[accounts]]` tables (100 000 in well under a second).
accounts_toml() {
  awk -v n="$1" 'BEGIN { for (i = 1; i <= n; i++)
    printf "[[accounts]]\nname = \"a%06d\"\nappid = \"wxscale%011d\"\nsecret = \"scale-secret-%06d\"\n\n", i, i, i }' >"$2"
}

# register_accounts N MOCK_HOST_PORT WORK_DIR: the mock learns the N appids and secrets, 16
# requests at a time; prints how many were NOT registered (0 when all were).
register_accounts() {
  awk -v n="$1" -v mock="$2" 'BEGIN { for (i = 1; i <= n; i++) {
    if (i > 1) print "next"
    printf "url = \"http://%s/__mock/accounts\"\nheader = \"Content-Type: application/json\"\n", mock
    printf "data = \"{\\\"appid\\\":\\\"wxscale%011d\\\",\\\"secret\\\":\\\"scale-secret-%06d\\\"}\"\n", i, i
    print "output = \"/dev/null\"\nwrite-out = \"%{http_code}\\n\"" } }' >"$3/register.curl"
  curl -sS --no-progress-meter --parallel --parallel-max 16 -K "$3/register.curl" 2>>"$3/curl.log" | grep -vc '^200$' || true
}
