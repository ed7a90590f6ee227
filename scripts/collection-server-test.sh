#!/usr/bin/env bash
# Self-check of scripts/collection-server, run by hand: starts an instance on
# 127.0.0.1:18999 over a temporary data root, probes it with curl (loopback
# only, verified TLS) and prints "N passed, M failed". Exits non-zero on any
# failure. Stops the server and removes its temporary files on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
server=$here/collection-server
# shellcheck source=lib/checks.sh
source "$here/lib/checks.sh"
port=${FERRY_TEST_PORT:-18999}
base=https://127.0.0.1:$port

tmp=$(mktemp -d "${TMPDIR:-/tmp}/collection-server-test.XXXXXX")
state=$tmp/state
data=$tmp/data

cleanup() {
  "$server" --stop --state "$state" >/dev/null 2>&1 || true
  rm -rf -- "$tmp"
}
trap cleanup EXIT

# Percent-encodes each byte of one path segment except the unreserved ones.
urlencode() {
  local LC_ALL=C s=$1 out='' c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9._~-]) out+=$c ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

# not_in_file STRING FILE: succeeds when FILE does not hold STRING.
not_in_file() {
  ! grep -qF -- "$1" "$2"
}

# wait_for_line FILE REGEX: waits up to 2 s for a line matching REGEX; nginx
# writes its logs after the answer is sent.
wait_for_line() {
  local i
  for ((i = 0; i < 20; i++)); do
    grep -qE -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# Succeeds when process $1 has exited (a zombie counts: in containers whose
# init never reaps, exited daemons stay zombies).
process_gone() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  [[ ${stat%% *} == Z ]]
}

# --- data ------------------------------------------------------------------

odd_name='a b#?%é.txt'
mkdir -p "$data/sub/deeper" "$data/folder"
printf 'hello collection\n' >"$data/hello.txt"
printf 'odd name contents\n' >"$data/sub/deeper/$odd_name"
printf 'listed?\n' >"$data/folder/inside.txt"
odd_path=/sub/deeper/$(urlencode "$odd_name")

# --- start -----------------------------------------------------------------

echo "starting collection-server on $base"
start_out=$("$server" --state "$state" --root "$data" --port "$port") || {
  echo "collection-server did not start" >&2
  exit 1
}
printf '%s\n' "$start_out"
expect_match "start prints the URL" "FERRY_COLLECTION_URL=$base" "$start_out"
expect "env file matches stdout" "$start_out" "$(cat "$state/env")"

ca=$state/ca.pem
rw=$(cat "$state/token-rw")
ro=$(cat "$state/token-ro")
collection_id=$(sed -n 's/^FERRY_COLLECTION_ID=//p' "$state/env")
expect_match "token files hold one token each" '^[0-9a-f]{64}:[0-9a-f]{64}$' "$rw:$ro"

# curl against the stand-in only: no proxy, our CA, bounded time.
c() {
  curl -s --noproxy '*' --cacert "$ca" --max-time 20 "$@"
}
xrw=(-H 'X-Requested-With: XMLHttpRequest')
auth_rw=(-H "Authorization: Bearer $rw" "${xrw[@]}")
auth_ro=(-H "Authorization: Bearer $ro" "${xrw[@]}")

# --- authentication ----------------------------------------------------------

out=$(c -o /dev/null -w '%{http_code} %{redirect_url}' "$base/hello.txt")
expect_match "no token, no X-Requested-With: 302 to login with client_id" \
  "^302 $base/_login/authorize\\?(.*&)?client_id=$collection_id(&|$)" "$out"

out=$(c -o /dev/null -w '%{http_code}' "$base/_login/authorize?client_id=$collection_id")
expect "login page answers on loopback" 200 "$out"

body=$(c "${xrw[@]}" -w '\n%{http_code} %{content_type}' "$base/hello.txt")
expect_match "no token with X-Requested-With: 401 JSON" \
  '"code":"unauthorized".*401 application/json$' "$(tr '\n' ' ' <<<"$body" | sed 's/ $//')"

out=$(c -H "Authorization: Bearer ${rw}0" "${xrw[@]}" -o /dev/null -w '%{http_code}' \
  "$base/hello.txt")
expect "unknown token: 401" 401 "$out"

# --- reads -------------------------------------------------------------------

out=$(c --http2 "${auth_rw[@]}" -w ' %{http_code} %{http_version}' "$base/hello.txt")
expect "GET with rw token over HTTP/2" "hello collection
 200 2" "$out"

out=$(c --http2 "${auth_ro[@]}" -w ' %{http_code} %{http_version}' "$base/hello.txt")
expect "GET with ro token over HTTP/2" "hello collection
 200 2" "$out"

out=$(c --http1.1 "${auth_ro[@]}" -o /dev/null -w '%{http_code} %{http_version}' \
  "$base/hello.txt")
expect "GET over HTTP/1.1" "200 1.1" "$out"

out=$(c "${auth_ro[@]}" -w ' %{http_code}' "$base$odd_path")
expect "GET of a percent-encoded odd name" "odd name contents
 200" "$out"

out=$(c "${auth_ro[@]}" -r 0-0 -w ' %{http_code} %{size_download}' "$base/hello.txt")
expect "Range bytes=0-0: 206 and one byte" "h 206 1" "$out"

headers=$(c "${auth_ro[@]}" -I "$base/hello.txt" | tr -d '\r')
expect_match "HEAD: 200" '^HTTP/2 200' "$headers"
expect_match "HEAD: Content-Length" $'(^|\n)content-length: 17(\n|$)' "$headers"

headers=$(c -X OPTIONS -i "$base/sub/no-such-file" | tr -d '\r')
expect_match "OPTIONS without token: 204 or 200" '^HTTP/2 20[04]' "$headers"
expect_match "OPTIONS: Allow" \
  $'(^|\n)allow: OPTIONS, HEAD, GET, PUT, DELETE(\n|$)' "$headers"

out=$(c "${auth_ro[@]}" -o /dev/null -w '%{http_code}' "$base/no-such-file")
expect "GET of a missing file: 404" 404 "$out"

for dir in /folder /folder/ /; do
  body=$(c "${auth_rw[@]}" -w '\n%{http_code}' "$base$dir")
  code=${body##*$'\n'}
  if [[ $code =~ ^40[34]$ && $body != *inside.txt* && $body != *hello.txt* ]]; then
    pass "GET of directory $dir: $code, no listing"
  else
    fail "GET of directory $dir" "got $code: $body"
  fi
done

# --- ?download ---------------------------------------------------------------

headers=$(c "${auth_ro[@]}" -I "$base$odd_path?download" | tr -d '\r')
expect_match "?download: attachment with the file name" \
  $'(^|\n)content-disposition: attachment; filename="a b#\\?%é\\.txt"(\n|$)' "$headers"

headers=$(c "${auth_ro[@]}" -I "$base/hello.txt?download=1" | tr -d '\r')
expect_match "?download=1: attachment" \
  $'(^|\n)content-disposition: attachment; filename="hello\\.txt"' "$headers"

headers=$(c "${auth_ro[@]}" -I "$base/hello.txt" | tr -d '\r')
if [[ $headers == *attachment* ]]; then
  fail "no ?download: no attachment" "$headers"
else
  pass "no ?download: no attachment"
fi

# --- writes ------------------------------------------------------------------

upload=$tmp/upload.bin
head -c 100000 /dev/urandom >"$upload"

out=$(c "${auth_rw[@]}" -T "$upload" -o /dev/null -w '%{http_code}' \
  "$base/new/nested/folder/up.bin")
expect_match "PUT with rw into new nested folders: 201/204" '^20[14]$' "$out"
check "PUT content on disk matches" cmp -s "$upload" "$data/new/nested/folder/up.bin"
out=$(c "${auth_ro[@]}" "$base/new/nested/folder/up.bin" | cmp - "$upload" && echo same)
expect "GET of the uploaded file matches" same "$out"

out=$(c "${auth_rw[@]}" -T "$upload" -o /dev/null -w '%{http_code}' \
  "$base/new/nested/folder/up.bin")
expect_match "PUT overwrite with rw: 200/201/204" '^20[014]$' "$out"

out=$(c "${auth_ro[@]}" -T "$upload" -o /dev/null -w '%{http_code}' "$base/ro/put.bin")
expect "PUT with ro: 403" 403 "$out"
check "PUT with ro wrote nothing" test ! -e "$data/ro/put.bin"

out=$(c "${auth_ro[@]}" -X DELETE -o /dev/null -w '%{http_code}' "$base/hello.txt")
expect "DELETE with ro: 403" 403 "$out"
check "DELETE with ro kept the file" test -e "$data/hello.txt"

out=$(c "${auth_rw[@]}" -X DELETE -o /dev/null -w '%{http_code}' \
  "$base/new/nested/folder/up.bin")
expect_match "DELETE with rw: 200/204" '^20[04]$' "$out"
check "DELETE with rw removed the file" test ! -e "$data/new/nested/folder/up.bin"

out=$(c "${xrw[@]}" -T "$upload" -o /dev/null -w '%{http_code}' "$base/anon.bin")
expect "PUT without token: 401" 401 "$out"

# --- redirect test hook --------------------------------------------------------

out=$(c "${auth_rw[@]}" -o /dev/null -w '%{http_code} %{redirect_url}' "$base/_moved/x")
expect "/_moved/x: 302 to /x" "302 $base/x" "$out"

# --- test hooks /_dated/ and /_noranges/ -------------------------------------

# Both serve the data root under a prefix with the token rules of /; each
# check below runs on / and on both prefixes, so that a difference shows.
for prefix in '' /_dated /_noranges; do
  at=${prefix:-/}

  out=$(c -o /dev/null -w '%{http_code} %{redirect_url}' "$base$prefix/hello.txt")
  expect_match "$at: no token, no X-Requested-With: 302 to login" \
    "^302 $base/_login/authorize\\?(.*&)?client_id=$collection_id(&|$)" "$out"
  body=$(c "${xrw[@]}" -w ' %{http_code} %{content_type}' "$base$prefix/hello.txt")
  expect_match "$at: no token: 401 JSON" \
    '"code":"unauthorized".* 401 application/json$' "${body//$'\n'/ }"
  out=$(c "${auth_ro[@]}" -w ' %{http_code}' "$base$prefix/hello.txt")
  expect "$at: GET with ro token" "hello collection
 200" "$out"
  out=$(c "${auth_ro[@]}" -w ' %{http_code}' "$base$prefix$odd_path")
  expect "$at: GET of a percent-encoded odd name" "odd name contents
 200" "$out"
  out=$(c "${auth_ro[@]}" -o /dev/null -w '%{http_code}' "$base$prefix/no-such-file")
  expect "$at: GET of a missing file: 404" 404 "$out"
  out=$(c "${auth_rw[@]}" -X POST -o /dev/null -w '%{http_code}' "$base$prefix/hello.txt")
  expect "$at: POST: 405" 405 "$out"
  for dir in /folder /folder/ /; do
    body=$(c "${auth_rw[@]}" -w '\n%{http_code}' "$base$prefix$dir")
    expect "$at: GET of directory $dir: 403, no listing" 403 "${body##*$'\n'}"
  done

  headers=$(c "${auth_ro[@]}" -I "$base$prefix/hello.txt" | tr -d '\r')
  expect_match "$at: HEAD: 200 with Content-Length" \
    $'^HTTP/2 200.*\ncontent-length: 17(\n|$)' "$headers"
  headers=$(c "${auth_ro[@]}" -I "$base$prefix/hello.txt?download" | tr -d '\r')
  expect_match "$at: ?download: attachment" \
    $'(^|\n)content-disposition: attachment; filename="hello\\.txt"' "$headers"
  headers=$(c -X OPTIONS -i "$base$prefix/sub/no-such-file" | tr -d '\r')
  expect_match "$at: OPTIONS without token: 204 with Allow" \
    $'^HTTP/2 204.*\nallow: OPTIONS, HEAD, GET, PUT, DELETE(\n|$)' "$headers"

  # Writes land at the plain path, whatever the prefix.
  out=$(c "${auth_ro[@]}" -T "$upload" -o /dev/null -w '%{http_code}' \
    "$base$prefix/hooks/ro.bin")
  expect "$at: PUT with ro: 403" 403 "$out"
  check "$at: PUT with ro wrote nothing" test ! -e "$data/hooks/ro.bin"
  out=$(c "${xrw[@]}" -T "$upload" -o /dev/null -w '%{http_code}' \
    "$base$prefix/hooks/anon.bin")
  expect "$at: PUT without token: 401" 401 "$out"
  out=$(c "${auth_rw[@]}" -T "$upload" -o /dev/null -w '%{http_code}' \
    "$base$prefix/hooks/new/up.bin")
  expect_match "$at: PUT with rw into a new folder: 201/204" '^20[14]$' "$out"
  check "$at: PUT landed at the plain path" cmp -s "$upload" "$data/hooks/new/up.bin"
  out=$(c "${auth_rw[@]}" -T "$upload" -o /dev/null -w '%{http_code}' "$base$prefix/folder")
  expect "$at: PUT onto a folder: 403" 403 "$out"
  out=$(c "${auth_ro[@]}" -X DELETE -o /dev/null -w '%{http_code}' \
    "$base$prefix/hooks/new/up.bin")
  expect "$at: DELETE with ro: 403" 403 "$out"
  out=$(c "${auth_rw[@]}" -X DELETE -o /dev/null -w '%{http_code}' \
    "$base$prefix/hooks/new/up.bin")
  expect_match "$at: DELETE with rw: 200/204" '^20[04]$' "$out"
  check "$at: DELETE removed the plain path" test ! -e "$data/hooks/new/up.bin"
done
rm -rf -- "${data:?}/hooks"

# /_getonly/: reading works, writing is refused, and OPTIONS says so.
headers=$(c -X OPTIONS -i "$base/_getonly/hello.txt" | tr -d '\r')
expect_match "/_getonly/: OPTIONS lists no PUT or DELETE" \
  $'^HTTP/2 204.*\nallow: OPTIONS, HEAD, GET(\n|$)' "$headers"
out=$(c "${auth_ro[@]}" "$base/_getonly/hello.txt")
expect "/_getonly/: GET with ro" "hello collection" "$out"
out=$(c "${auth_rw[@]}" -T "$upload" -o /dev/null -w '%{http_code}' \
  "$base/_getonly/getonly.bin")
expect "/_getonly/: PUT with rw: 405" 405 "$out"
check "/_getonly/: PUT wrote nothing" test ! -e "$data/getonly.bin"
out=$(c "${auth_rw[@]}" -X DELETE -o /dev/null -w '%{http_code}' \
  "$base/_getonly/hello.txt")
expect "/_getonly/: DELETE with rw: 405" 405 "$out"
check "/_getonly/: DELETE removed nothing" test -e "$data/hello.txt"

# Last-Modified only under /_dated/, on GET and HEAD alike.
headers=$(c "${auth_ro[@]}" -I "$base/hello.txt" | tr -d '\r')
if [[ ${headers,,} == *last-modified:* ]]; then
  fail "/: no Last-Modified" "$headers"
else
  pass "/: no Last-Modified"
fi
headers=$(c "${auth_ro[@]}" -I "$base/_noranges/hello.txt" | tr -d '\r')
if [[ ${headers,,} == *last-modified:* ]]; then
  fail "/_noranges/: no Last-Modified" "$headers"
else
  pass "/_noranges/: no Last-Modified"
fi
mtime=$(LC_ALL=C TZ=GMT date -r "$data/hello.txt" '+%a, %d %b %Y %H:%M:%S GMT')
headers=$(c "${auth_ro[@]}" -I "$base/_dated/hello.txt" | tr -d '\r')
expect_match "/_dated/: HEAD sends the file's Last-Modified" \
  $'(^|\n)last-modified: '"$mtime"$'(\n|$)' "$headers"
headers=$(c "${auth_ro[@]}" -D - -o /dev/null "$base/_dated/hello.txt" | tr -d '\r')
expect_match "/_dated/: GET sends the file's Last-Modified" \
  $'(^|\n)last-modified: '"$mtime"$'(\n|$)' "$headers"

# Range: honoured on / and /_dated/, ignored on /_noranges/.
for prefix in '' /_dated; do
  out=$(c "${auth_ro[@]}" -r 0-0 -w ' %{http_code} %{size_download}' \
    "$base$prefix/hello.txt")
  expect "${prefix:-/}: Range bytes=0-0: 206 and one byte" "h 206 1" "$out"
done
out=$(c "${auth_ro[@]}" -r 0-0 -o /dev/null -w '%{http_code} %{size_download}' \
  "$base/_noranges/hello.txt")
expect "/_noranges/: Range bytes=0-0: 200 and the whole file" "200 17" "$out"
out=$(c "${auth_ro[@]}" -r 5-9 -w ' %{http_code}' "$base/_noranges/hello.txt")
expect "/_noranges/: Range bytes=5-9: 200 and the whole file" "hello collection
 200" "$out"
headers=$(c "${auth_ro[@]}" -I "$base/_noranges/hello.txt" | tr -d '\r')
if [[ ${headers,,} == *accept-ranges:* ]]; then
  fail "/_noranges/: no Accept-Ranges" "$headers"
else
  pass "/_noranges/: no Accept-Ranges"
fi

restart() {
  "$server" --state "$state" --root "$data" --port "$port" "$@" >/dev/null 2>&1
}

# --- Globus Auth and Transfer API stand-ins ------------------------------------

# env_of NAME: a value of the env file.
env_of() {
  sed -n "s/^$1=//p" "$state/env"
}
auth_url=$(env_of FERRY_AUTH_URL)
transfer_url=$(env_of FERRY_TRANSFER_URL)
expect "FERRY_AUTH_URL" "$base/_auth" "$auth_url"
expect "FERRY_TRANSFER_URL" "$base/_transfer" "$transfer_url"
expect "FERRY_ELSEWHERE_URL" "https://127.0.0.2:$port" "$(env_of FERRY_ELSEWHERE_URL)"
expect "FERRY_AUTH_LOG" "$state/logs/auth.log" "$(env_of FERRY_AUTH_LOG)"
expect "FERRY_ELSEWHERE_LOG" "$state/logs/elsewhere.log" "$(env_of FERRY_ELSEWHERE_LOG)"
client_id=$(env_of FERRY_CLIENT_ID)
client_secret=$(cat "$(env_of FERRY_CLIENT_SECRET_FILE)")
short_id=$(env_of FERRY_SHORT_CLIENT_ID)
short_secret=$(cat "$(env_of FERRY_SHORT_CLIENT_SECRET_FILE)")
instant_id=$(env_of FERRY_INSTANT_CLIENT_ID)
instant_secret=$(cat "$(env_of FERRY_INSTANT_CLIENT_SECRET_FILE)")
off_id=$(env_of FERRY_HTTPS_OFF_COLLECTION_ID)
expect "five distinct ids: three clients, two collections" 5 \
  "$(printf '%s\n' "$client_id" "$short_id" "$instant_id" "$off_id" "$collection_id" | sort -u | wc -l)"
expect "clients.txt has the three clients, rw, 3600 s, 4 s and 1 s" \
  "$client_id $client_secret rw 3600|$short_id $short_secret rw 4|$instant_id $instant_secret rw 1" \
  "$(grep -v '^#' "$state/clients.txt" | paste -sd '|')"
for f in clients.txt grant-secret nginx.conf "client-$client_id.secret" \
  "client-$short_id.secret" "client-$instant_id.secret"; do
  expect "$f is private (0600)" 600 "$(stat -c %a "$state/$f")"
done

transfer_scope=urn:globus:auth:scope:transfer.api.globus.org:all
https_scope=https://auth.globus.org/scopes/$collection_id/https
data_scope=https://auth.globus.org/scopes/$collection_id/data_access
issued=$tmp/issued-tokens

# grant ID:SECRET SCOPES: the token endpoint's answer, then a line with the
# status. Every token it hands out is remembered in $issued.
grant() {
  local out
  out=$(c -u "$1" --data-urlencode grant_type=client_credentials \
    --data-urlencode "scope=$2" -w '\n%{http_code}' "$auth_url/v2/oauth2/token")
  grep -o 'g1\.[^"]*' <<<"$out" >>"$issued" || true
  printf '%s\n' "$out"
}
# field JSON PATH: a value of a JSON document, PATH like other_tokens.0.scope;
# JSON null prints as "null", and a missing field as "missing".
field() {
  /usr/bin/python3 -c 'import json, sys
d = json.loads(sys.argv[1])
try:
    for k in sys.argv[2].split("."):
        d = d[int(k)] if isinstance(d, list) else d[k]
except (KeyError, IndexError, TypeError):
    d = "missing"
print("null" if d is None else json.dumps(d) if isinstance(d, (list, dict, bool)) else d)' \
    "$1" "$2"
}
body_of() { sed '$d' <<<"$1"; }
status_of() { tail -n 1 <<<"$1"; }
bearer() { printf 'Authorization: Bearer %s' "$1"; }

# The short-lived client's token first: it must be seen working before its
# 4 s are over, and expired at the end of this section.
out=$(grant "$short_id:$short_secret" "$https_scope $transfer_scope")
expect "short-lived client: 200" 200 "$(status_of "$out")"
short_doc=$(body_of "$out")
short_token=$(field "$short_doc" access_token)
short_transfer=$(field "$short_doc" other_tokens.0.access_token)
expect "short-lived client: expires_in 4" 4 "$(field "$short_doc" expires_in)"
out=$(c -H "$(bearer "$short_token")" "${xrw[@]}" "$base/hello.txt")
expect "short-lived token works before it expires" "hello collection" "$out"
out=$(c -H "$(bearer "$short_transfer")" -o /dev/null -w '%{http_code}' \
  "$transfer_url/v0.10/endpoint/$collection_id")
expect "short-lived transfer token works before it expires" 200 "$out"

out=$(grant "$client_id:$client_secret" "$https_scope")
expect "grant with good credentials: 200" 200 "$(status_of "$out")"
doc=$(body_of "$out")
grant_rw=$(field "$doc" access_token)
expect_match "grant: token g1.<collection>.rw.<expires>.<mac>" \
  "^g1\\.$collection_id\\.rw\\.[0-9]+\\.[A-Za-z0-9_-]{22}\$" "$grant_rw"
expect "grant: token_type Bearer" Bearer "$(field "$doc" token_type)"
expect "grant: expires_in 3600" 3600 "$(field "$doc" expires_in)"
expect "grant: scope" "$https_scope" "$(field "$doc" scope)"
expect "grant: resource_server is the collection id" "$collection_id" \
  "$(field "$doc" resource_server)"
expect "grant: no other_tokens" '[]' "$(field "$doc" other_tokens)"
expires=${grant_rw#g1.*.rw.}
expires=${expires%%.*}
now=$(date +%s)
check "grant: expiry in the token is now + 3600" \
  test $((expires - now)) -ge 3590 -a $((expires - now)) -le 3600

auth_grant=(-H "$(bearer "$grant_rw")" "${xrw[@]}")
out=$(c --http2 "${auth_grant[@]}" -w ' %{http_code} %{http_version}' "$base/hello.txt")
expect "grant token: GET over HTTP/2" "hello collection
 200 2" "$out"
out=$(c -H "Authorization: bEaReR $grant_rw" "${xrw[@]}" "$base/hello.txt")
expect "grant token: scheme name in any case" "hello collection" "$out"
out=$(c -H "Authorization: Bearer ${grant_rw^^}" "${xrw[@]}" -o /dev/null -w '%{http_code}' \
  "$base/hello.txt")
expect "grant token: case-sensitive" 401 "$out"
for prefix in '' /_dated /_noranges /_getonly; do
  out=$(c "${auth_grant[@]}" -r 0-0 -o /dev/null -w '%{http_code}' "$base$prefix/hello.txt")
  expect "grant token: GET ${prefix:-/} with Range" \
    "$([[ $prefix == /_noranges ]] && echo 200 || echo 206)" "$out"
done
out=$(c "${auth_grant[@]}" -T "$upload" -o /dev/null -w '%{http_code}' "$base/granted/up.bin")
expect_match "grant token (rw client): PUT 201/204" '^20[14]$' "$out"
check "grant token: PUT landed" cmp -s "$upload" "$data/granted/up.bin"
out=$(c "${auth_grant[@]}" -X DELETE -o /dev/null -w '%{http_code}' "$base/granted/up.bin")
expect_match "grant token (rw client): DELETE 200/204" '^20[04]$' "$out"
rm -rf -- "${data:?}/granted"
check "access log shows the grant token's mode" \
  wait_for_line "$state/logs/access.log" '"DELETE /granted/up\.bin HTTP/2\.0" .* mode=rw '

# A forged token: another mac, another expiry, another mode, another
# collection. The first character of the mac, not the last: its low bits
# carry nothing.
mac=${grant_rw##*.}
first=${mac:0:1}
other=A
[[ $first == A ]] && other=B
forged=(
  "another mac|${grant_rw%.*}.$other${mac:1}"
  "a later expiry|${grant_rw/.rw.$expires./.rw.$((expires + 1000)).}"
  "another mode|${grant_rw/.rw./.ro.}"
  "another collection|${grant_rw/g1.$collection_id./g1.$off_id.}"
  "the transfer resource|${grant_rw/g1.$collection_id./g1.transfer.}"
  "padding after the mac|$grant_rw="
  "a character more|${grant_rw}x"
)
for f in "${forged[@]}"; do
  out=$(c -H "$(bearer "${f#*|}")" "${xrw[@]}" -o /dev/null -w '%{http_code}' \
    "$base/hello.txt")
  expect "forged token, ${f%%|*}: 401" 401 "$out"
done
out=$(c -H "$(bearer "${grant_rw%.*}.$other${mac:1}")" -o /dev/null \
  -w '%{http_code} %{redirect_url}' "$base/hello.txt")
expect_match "forged token without X-Requested-With: 302 to login" \
  "^302 $base/_login/authorize\\?" "$out"

# Several resource servers in one grant: the first scope's is at the top.
out=$(grant "$client_id:$client_secret" "$transfer_scope $https_scope $data_scope")
expect "grant of two resource servers: 200" 200 "$(status_of "$out")"
doc=$(body_of "$out")
transfer_token=$(field "$doc" access_token)
expect "two servers: the first scope's at the top" transfer.api.globus.org \
  "$(field "$doc" resource_server)"
expect "two servers: its scope" "$transfer_scope" "$(field "$doc" scope)"
expect_match "two servers: a transfer token" '^g1\.transfer\.rw\.[0-9]+\.' "$transfer_token"
expect "two servers: one other token" 1 \
  "$(/usr/bin/python3 -c 'import json, sys; print(len(json.loads(sys.argv[1])["other_tokens"]))' \
    "$doc")"
expect "two servers: other token's resource_server" "$collection_id" \
  "$(field "$doc" other_tokens.0.resource_server)"
expect "two servers: other token's scopes" "$https_scope $data_scope" \
  "$(field "$doc" other_tokens.0.scope)"
expect "two servers: other token's type and lifetime" "Bearer 3600 missing" \
  "$(field "$doc" other_tokens.0.token_type) $(field "$doc" other_tokens.0.expires_in) $(
    field "$doc" other_tokens.0.other_tokens)"
out=$(c -H "$(bearer "$(field "$doc" other_tokens.0.access_token)")" "${xrw[@]}" \
  "$base/hello.txt")
expect "two servers: the other token reads files" "hello collection" "$out"

out=$(grant "$client_id:$client_secret" "https://auth.globus.org/scopes/$off_id/https")
expect "grant for the HTTPS-off collection: 200" 200 "$(status_of "$out")"
off_token=$(field "$(body_of "$out")" access_token)
expect "HTTPS-off grant: its resource_server" "$off_id" \
  "$(field "$(body_of "$out")" resource_server)"
out=$(c -H "$(bearer "$off_token")" "${xrw[@]}" -o /dev/null -w '%{http_code}' \
  "$base/hello.txt")
expect "another collection's token: 401 here" 401 "$out"

# Refusals of the token endpoint.
expect_grant_error() {
  local name=$1 status=$2 error=$3 out=$4
  expect "$name: $status $error" "$status $error" \
    "$(status_of "$out") $(field "$(body_of "$out")" error)"
}
out=$(grant "$client_id:${client_secret}x" "$https_scope")
expect_grant_error "wrong secret" 401 invalid_client "$out"
out=$(grant "$short_id:$client_secret" "$https_scope")
expect_grant_error "another client's secret" 401 invalid_client "$out"
out=$(grant "no-such-client:$client_secret" "$https_scope")
expect_grant_error "unknown client" 401 invalid_client "$out"
out=$(c --data-urlencode grant_type=client_credentials --data-urlencode "scope=$https_scope" \
  -w '\n%{http_code}' "$auth_url/v2/oauth2/token")
expect_grant_error "no credentials" 401 invalid_client "$out"
out=$(c --data-urlencode grant_type=client_credentials --data-urlencode "scope=$https_scope" \
  --data-urlencode "client_id=$client_id" --data-urlencode "client_secret=$client_secret" \
  -w '\n%{http_code}' "$auth_url/v2/oauth2/token")
expect_grant_error "credentials as form fields (Basic only)" 401 invalid_client "$out"
out=$(c -u "$client_id:$client_secret" --data-urlencode grant_type=authorization_code \
  --data-urlencode "scope=$https_scope" -w '\n%{http_code}' "$auth_url/v2/oauth2/token")
expect_grant_error "grant_type authorization_code" 400 unsupported_grant_type "$out"
out=$(c -u "$client_id:$client_secret" --data-urlencode "scope=$https_scope" \
  -w '\n%{http_code}' "$auth_url/v2/oauth2/token")
expect_grant_error "no grant_type" 400 unsupported_grant_type "$out"
for scope in "" "openid" "https://auth.globus.org/scopes/$collection_id/all" \
  "https://auth.globus.org/scopes/not-this-collection/https" \
  "$https_scope https://auth.globus.org/scopes/not-this-collection/data_access"; do
  out=$(grant "$client_id:$client_secret" "$scope")
  expect_grant_error "scope '$scope'" 400 invalid_scope "$out"
done

# The Transfer API stand-in.
endpoint() {
  c -H "$(bearer "$1")" -w '\n%{http_code} %{content_type}' "$transfer_url/v0.10/endpoint/$2"
}
out=$(endpoint "$transfer_token" "$collection_id")
doc=$(body_of "$out")
expect "endpoint document: 200 JSON" "200 application/json" "$(status_of "$out")"
expect "endpoint document: fields" \
  "endpoint|$collection_id|ferry local collection|GCSv5_mapped_collection|false|$base" \
  "$(for k in DATA_TYPE id display_name entity_type high_assurance https_server; do
    field "$doc" "$k"
  done | paste -sd '|')"
out=$(endpoint "$transfer_token" "$off_id")
doc=$(body_of "$out")
expect "HTTPS-off endpoint document: 200 JSON" "200 application/json" "$(status_of "$out")"
expect "HTTPS-off endpoint document: fields" \
  "endpoint|$off_id|ferry local collection, HTTPS off|GCSv5_guest_collection|false|null" \
  "$(for k in DATA_TYPE id display_name entity_type high_assurance https_server; do
    field "$doc" "$k"
  done | paste -sd '|')"
out=$(endpoint "$transfer_token" 00000000-0000-0000-0000-000000000000)
expect "unknown endpoint: 404 EndpointNotFound" "404 application/json EndpointNotFound" \
  "$(status_of "$out") $(field "$(body_of "$out")" code)"
out=$(c -w '\n%{http_code} %{content_type}' "$transfer_url/v0.10/endpoint/$collection_id")
expect "endpoint without a token: 401 AuthenticationFailed" \
  "401 application/json AuthenticationFailed" \
  "$(status_of "$out") $(field "$(body_of "$out")" code)"
for kind in "a grant token for the collection|$grant_rw" "a static token|$rw" \
  "another collection's token|$off_token"; do
  out=$(endpoint "${kind#*|}" "$collection_id")
  expect "endpoint with ${kind%%|*}: 401" 401 \
    "$(status_of "$out" | cut -d' ' -f1)"
done
out=$(endpoint "${transfer_token%.*}.$other${mac:1}" "$collection_id")
expect "endpoint with a forged transfer token: 401" 401 "$(status_of "$out" | cut -d' ' -f1)"
out=$(c -H "$(bearer "$transfer_token")" "${xrw[@]}" -o /dev/null -w '%{http_code}' \
  "$base/hello.txt")
expect "a transfer token is no collection token: 401" 401 "$out"

# /_elsewhere/: a redirect to another host, whose log tells whether a token
# came along.
out=$(c "${auth_grant[@]}" -o /dev/null -w '%{http_code} %{redirect_url}' \
  "$base/_elsewhere/some/file%20x.txt?download")
expect "/_elsewhere/: 302 to another host, even with a token" \
  "302 https://127.0.0.2:$port/some/file%20x.txt?download" "$out"
elsewhere=$(env_of FERRY_ELSEWHERE_URL)
elsewhere_log=$(env_of FERRY_ELSEWHERE_LOG)
out=$(c -w ' %{http_code}' "$elsewhere/without-token")
expect "elsewhere server answers (certificate names 127.0.0.2)" "elsewhere
 200" "$out"
out=$(c -H "$(bearer "$grant_rw")" -o /dev/null -w '%{http_code}' "$elsewhere/with-token")
expect "elsewhere server answers a request with a token" 200 "$out"
check "elsewhere log: auth=absent without a token" \
  wait_for_line "$elsewhere_log" '"GET /without-token HTTP/[0-9.]+" 200 auth=absent$'
check "elsewhere log: auth=present with one" \
  wait_for_line "$elsewhere_log" '"GET /with-token HTTP/[0-9.]+" 200 auth=present$'
check "elsewhere log holds no token" not_in_file "$grant_rw" "$elsewhere_log"
out=$(c -o /dev/null -w '%{http_code} %{redirect_url}' "$elsewhere/_impostor/f")
expect "/_impostor/ on the elsewhere server: 302 to the collection's login" \
  "302 $base/_login/authorize?client_id=$collection_id" "${out%%&*}"
out=$(c "${xrw[@]}" -w ' %{http_code}' "$elsewhere/_impostor/f")
expect "/_impostor/ answers scripts" "impostor
 200" "$out"

# By now the short-lived tokens have expired, or nearly.
short_expires=${short_token#g1.*.rw.}
short_expires=${short_expires%%.*}
while (($(date +%s) <= short_expires)); do sleep 0.2; done
out=$(c -H "$(bearer "$short_token")" "${xrw[@]}" -w ' %{http_code}' "$base/hello.txt")
expect_match "expired token: 401" ' 401$' "$out"
out=$(c -H "$(bearer "$short_token")" -o /dev/null -w '%{http_code} %{redirect_url}' \
  "$base/hello.txt")
expect_match "expired token without X-Requested-With: 302 to login" \
  "^302 $base/_login/authorize\\?" "$out"
out=$(endpoint "$short_transfer" "$collection_id")
expect "expired transfer token: 401" 401 "$(status_of "$out" | cut -d' ' -f1)"

# The grant log: one line per grant, no secret, no token.
auth_log=$(env_of FERRY_AUTH_LOG)
expect_match "auth.log: a success with client and scopes" \
  "client=$client_id scopes=\"$transfer_scope $https_scope $data_scope\" outcome=200" \
  "$(cat "$auth_log")"
expect_match "auth.log: a refusal" 'outcome=401 invalid_client' "$(cat "$auth_log")"
expect_match "auth.log: a bad scope" 'outcome=400 invalid_scope' "$(cat "$auth_log")"
mapfile -t tokens <"$issued"
check "tokens were issued (${#tokens[@]})" test "${#tokens[@]}" -ge 6
leaks=0
for secret in "$client_secret" "$short_secret" "$(cat "$state/grant-secret")" \
  "${tokens[@]}"; do
  not_in_file "$secret" "$auth_log" || leaks=$((leaks + 1))
  # The mac alone is a token's secret part.
  [[ $secret != g1.* ]] || not_in_file "${secret##*.}" "$auth_log" || leaks=$((leaks + 1))
done
expect "auth.log holds no secret and no token" 0 "$leaks"

# A read-only client, from a clients file of our own; tokens of before the
# restart stay valid, for the grant secret stays.
ro_id=ro-client-$RANDOM
ro_secret=$(head -c 24 /dev/urandom | base64 | tr '/+' '_-')
{
  echo "# test clients"
  echo "$client_id $client_secret rw 3600"
  echo "$short_id $short_secret rw 4"
  echo "$ro_id $ro_secret ro 3600"
} >"$tmp/clients.txt"
check "restart with --clients" restart --clients "$tmp/clients.txt"
expect "--clients: first client is FERRY_CLIENT_ID" "$client_id" "$(env_of FERRY_CLIENT_ID)"
out=$(c "${auth_grant[@]}" "$base/hello.txt")
expect "a grant token from before the restart still works" "hello collection" "$out"
out=$(grant "$ro_id:$ro_secret" "$https_scope")
expect "ro client: 200" 200 "$(status_of "$out")"
grant_ro=$(field "$(body_of "$out")" access_token)
expect_match "ro client: token of mode ro" "^g1\\.$collection_id\\.ro\\." "$grant_ro"
out=$(c -H "$(bearer "$grant_ro")" "${xrw[@]}" "$base/hello.txt")
expect "ro client's token: GET" "hello collection" "$out"
out=$(c -H "$(bearer "$grant_ro")" "${xrw[@]}" -T "$upload" -o /dev/null -w '%{http_code}' \
  "$base/ro-grant/put.bin")
expect "ro client's token: PUT 403" 403 "$out"
check "ro client's PUT wrote nothing" test ! -e "$data/ro-grant/put.bin"
out=$(c -H "$(bearer "$grant_ro")" "${xrw[@]}" -X DELETE -o /dev/null -w '%{http_code}' \
  "$base/hello.txt")
expect "ro client's token: DELETE 403" 403 "$out"
out=$(c -H "$(bearer "${grant_ro/.ro./.rw.}")" "${xrw[@]}" -T "$upload" -o /dev/null \
  -w '%{http_code}' "$base/ro-grant/put.bin")
expect "ro token made rw by hand: 401" 401 "$out"
check "auth.log holds no ro secret" not_in_file "$ro_secret" "$auth_log"
check "auth.log holds no ro token" not_in_file "$grant_ro" "$auth_log"

# --- restart and stop ----------------------------------------------------------

ca_before=$(cat "$ca")
# The collection's certificate never names 127.0.0.2, which the chaos tests
# use as an address it does not name; the elsewhere server has its own.
san_of() {
  openssl x509 -in "$1" -noout -ext subjectAltName | tail -n 1 | sed 's/^ *//'
}
expect "the collection's certificate names localhost, 127.0.0.1, ::1" \
  "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1" \
  "$(san_of "$state/server.pem")"
expect "the elsewhere certificate names 127.0.0.2" "IP Address:127.0.0.2" \
  "$(san_of "$state/elsewhere.pem")"
# A state folder of an earlier version: its collection certificate names
# 127.0.0.2 and there is no elsewhere certificate. The next start makes both
# anew under the same CA.
old_cert() {
  printf 'subjectAltName = DNS:localhost, IP:127.0.0.1, IP:127.0.0.2, IP:::1\n' \
    >"$state/server.ext"
  openssl req -new -key "$state/server.key" -subj /CN=localhost -out "$tmp/old.csr" &&
    openssl x509 -req -in "$tmp/old.csr" -CA "$ca" -CAkey "$state/ca.key" \
      -CAcreateserial -out "$state/server.pem" -days 1 -sha256 \
      -extfile "$state/server.ext" &&
    rm "$state/elsewhere.pem" "$state/elsewhere.key"
} 2>/dev/null
check "an old certificate naming 127.0.0.2, none for the elsewhere server" old_cert
auth_pid_before=$(cat "$state/auth.pid")
check "start again restarts" restart
expect "restart keeps the CA" "$ca_before" "$(cat "$ca")"
expect "restart keeps the rw token" "$rw" "$(cat "$state/token-rw")"
out=$(c "${auth_rw[@]}" -o /dev/null -w '%{http_code}' "$base/hello.txt")
expect "serves after restart" 200 "$out"
expect "restart remade the collection's certificate without 127.0.0.2" \
  "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1" \
  "$(san_of "$state/server.pem")"
out=$(c -o /dev/null -w '%{http_code}' "$base/_login/")
expect "the collection is trusted after the remake" 200 "$out"
out=$(c -o /dev/null -w '%{http_code}' "$(env_of FERRY_ELSEWHERE_URL)/x")
expect "the elsewhere server is trusted after the remake" 200 "$out"
expect "restart without --clients: the state's own clients again" "$client_id" \
  "$(env_of FERRY_CLIENT_ID)"
check "restart stopped the old token endpoint" process_gone "$auth_pid_before"
auth_pid=$(cat "$state/auth.pid")
check "restart started a new token endpoint" test "$auth_pid" != "$auth_pid_before"
out=$(grant "$client_id:$client_secret" "$https_scope")
expect "token endpoint answers after restart" 200 "$(status_of "$out")"

# A start holds none of the caller's descriptors: a command substitution
# would otherwise wait for the daemons.
check "restart returns while its stdout is a pipe" \
  timeout 20 bash -c '"$@" | cat >/dev/null' _ "$server" --state "$state" --root "$data" \
  --port "$port"
auth_pid=$(cat "$state/auth.pid")
check "the token endpoint's descriptors: none of ours" \
  test "$(find "/proc/$auth_pid/fd" -lname 'pipe:*' | wc -l)" -eq 0

out=$("$server" --state "$tmp/other-state" --root "$data" --port "$port" 2>&1) &&
  rc=0 || rc=$?
expect "a second state dir on a busy port fails" 1 "$rc"
expect_match "busy port message" 'busy' "$out"

check "stop" "$server" --stop --state "$state"
out=$(c -o /dev/null -w '%{http_code}' "$base/_login/" || true)
expect "nothing answers after stop" 000 "$out"
check "stop ended the token endpoint" process_gone "$auth_pid"
check "stop removed its socket and pid files" \
  test ! -e "$state/auth.sock" -a ! -e "$state/auth.pid" -a ! -e "$state/nginx.pid"
out=$(c -o /dev/null -w '%{http_code}' "$(env_of FERRY_ELSEWHERE_URL)/x" || true)
expect "the elsewhere server is gone too" 000 "$out"
check "stop again succeeds" "$server" --stop --state "$state"

checks_summary
