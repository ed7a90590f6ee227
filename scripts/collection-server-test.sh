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

# --- a redirect to another host --------------------------------------------------

# env_of NAME: a value of the env file.
env_of() {
  sed -n "s/^$1=//p" "$state/env"
}
expect "FERRY_ELSEWHERE_URL" "https://127.0.0.2:$port" "$(env_of FERRY_ELSEWHERE_URL)"
expect "FERRY_ELSEWHERE_LOG" "$state/logs/elsewhere.log" "$(env_of FERRY_ELSEWHERE_LOG)"

# /_elsewhere/: a redirect to another host, whose log tells whether a token
# came along.
out=$(c "${auth_rw[@]}" -o /dev/null -w '%{http_code} %{redirect_url}' \
  "$base/_elsewhere/some/file%20x.txt?download")
expect "/_elsewhere/: 302 to another host, even with a token" \
  "302 https://127.0.0.2:$port/some/file%20x.txt?download" "$out"
elsewhere=$(env_of FERRY_ELSEWHERE_URL)
elsewhere_log=$(env_of FERRY_ELSEWHERE_LOG)
out=$(c -w ' %{http_code}' "$elsewhere/without-token")
expect "elsewhere server answers (certificate names 127.0.0.2)" "elsewhere
 200" "$out"
out=$(c -H "Authorization: Bearer $rw" -o /dev/null -w '%{http_code}' "$elsewhere/with-token")
expect "elsewhere server answers a request with a token" 200 "$out"
check "elsewhere log: auth=absent without a token" \
  wait_for_line "$elsewhere_log" '"GET /without-token HTTP/[0-9.]+" 200 auth=absent$'
check "elsewhere log: auth=present with one" \
  wait_for_line "$elsewhere_log" '"GET /with-token HTTP/[0-9.]+" 200 auth=present$'
check "elsewhere log holds no token" not_in_file "$rw" "$elsewhere_log"

# --- restart and stop ----------------------------------------------------------

ca_before=$(cat "$ca")
restart() {
  "$server" --state "$state" --root "$data" --port "$port" "$@" >/dev/null 2>&1
}
# A certificate of a state folder made before the elsewhere server: it lacks
# 127.0.0.2, and the next start makes a new one under the same CA.
old_cert() {
  printf 'subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1\n' >"$tmp/old.ext"
  openssl req -new -key "$state/server.key" -subj /CN=localhost -out "$tmp/old.csr" &&
    openssl x509 -req -in "$tmp/old.csr" -CA "$ca" -CAkey "$state/ca.key" \
      -CAcreateserial -out "$state/server.pem" -days 1 -sha256 -extfile "$tmp/old.ext"
} 2>/dev/null
check "an old certificate without 127.0.0.2" old_cert
check "start again restarts" restart
expect "restart keeps the CA" "$ca_before" "$(cat "$ca")"
expect "restart keeps the rw token" "$rw" "$(cat "$state/token-rw")"
out=$(c "${auth_rw[@]}" -o /dev/null -w '%{http_code}' "$base/hello.txt")
expect "serves after restart" 200 "$out"
expect_match "restart remade the certificate with 127.0.0.2" 'IP Address:127\.0\.0\.2' \
  "$(openssl x509 -in "$state/server.pem" -noout -ext subjectAltName)"
out=$(c -o /dev/null -w '%{http_code}' "$(env_of FERRY_ELSEWHERE_URL)/x")
expect "the elsewhere server is trusted after the remake" 200 "$out"

out=$("$server" --state "$tmp/other-state" --root "$data" --port "$port" 2>&1) &&
  rc=0 || rc=$?
expect "a second state dir on a busy port fails" 1 "$rc"
expect_match "busy port message" 'busy' "$out"

check "stop" "$server" --stop --state "$state"
out=$(c -o /dev/null -w '%{http_code}' "$base/_login/" || true)
expect "nothing answers after stop" 000 "$out"
out=$(c -o /dev/null -w '%{http_code}' "$(env_of FERRY_ELSEWHERE_URL)/x" || true)
expect "the elsewhere server is gone too" 000 "$out"
check "stop again succeeds" "$server" --stop --state "$state"

checks_summary
