#!/usr/bin/env bash
# Self-check of tests/chaos/chaos-proxy: starts a collection-server instance
# of its own on 127.0.0.1:$FERRY_TEST_PORT over a temporary data root, puts
# chaos-proxy instances in front of it, and checks with curl (HTTP/2 and
# HTTP/1.1, verified TLS, loopback only) that clean requests pass byte for
# byte and that every fault kind really happens. Prints "N passed, M failed"
# and exits non-zero on any failure. Cleans up after itself.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
proxy=$here/chaos-proxy
server=$here/../../scripts/collection-server
# shellcheck source=../../scripts/lib/checks.sh
source "$here/../../scripts/lib/checks.sh"
port=${FERRY_TEST_PORT:-20943}

tmp=$(mktemp -d --tmpdir --suffix=.chaos-proxy-test)
state=$tmp/state
data=$tmp/data
proxy_pids=()

cleanup() {
  local pid
  for pid in "${proxy_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  "$server" --stop --state "$state" >/dev/null 2>&1 || true
  rm -rf -- "$tmp"
}
trap cleanup EXIT

# --- the collection and its data ------------------------------------------------

mkdir -p "$data"
head -c 1048576 /dev/urandom >"$data/big.bin"
head -c 200000 /dev/urandom >"$data/small.bin"
printf 'hello chaos\n' >"$data/hello.txt"
for kind in cut stall truncate goaway excess; do
  cp "$data/big.bin" "$data/$kind.bin"
done
cp "$data/small.bin" "$data/trickle.bin"

"$server" --state "$state" --root "$data" --port "$port" >/dev/null || {
  echo "collection-server did not start" >&2
  exit 1
}
upstream=https://127.0.0.1:$port
ca=$state/ca.pem
rw=$(cat "$state/token-rw")
access_log=$state/logs/access.log

# start_proxy NAME ARGS...: starts a proxy in front of the collection; sets
# $proxy_port. Its stats go to $tmp/NAME.stats, its log to $tmp/NAME.log.
start_proxy() {
  local name=$1 line
  shift
  coproc PROXY { exec "$proxy" --cert "$state/server.pem" --key "$state/server.key" \
    --upstream "$upstream" --upstream-ca "$ca" --stats "$tmp/$name.stats" \
    --log "$tmp/$name.log" "$@" 2>"$tmp/$name.err"; }
  proxy_pids+=("$PROXY_PID")
  proxy_pid=$PROXY_PID
  if ! read -r -t 10 line <&"${PROXY[0]}" || [[ $line != PORT=* ]]; then
    echo "chaos-proxy $name did not start:" >&2
    cat "$tmp/$name.err" >&2
    exit 1
  fi
  proxy_port=${line#PORT=}
}

stop_proxy() {
  kill "$proxy_pid" 2>/dev/null || true
  wait "$proxy_pid" 2>/dev/null || true
}

# stat_of NAME KEY [SUB]: a counter from a proxy's stats file.
stat_of() {
  /usr/bin/python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))[sys.argv[2]]
print(d.get(sys.argv[3], 0) if len(sys.argv) > 3 else d)' "$tmp/$1.stats" "${@:2}"
}

# Curl through a proxy (or anything on loopback): our CA, bounded time.
c() {
  curl -s --noproxy '*' --cacert "$ca" --max-time 20 \
    -H 'X-Requested-With: XMLHttpRequest' "$@"
}
auth=(-H "Authorization: Bearer $rw")

# --- refusals -------------------------------------------------------------------

if "$proxy" --cert "$state/server.pem" --key "$state/server.key" \
  --upstream https://192.0.2.1:443 --upstream-ca "$ca" >/dev/null 2>&1; then
  fail "a non-loopback upstream is refused"
else
  pass "a non-loopback upstream is refused"
fi
if "$proxy" --cert "$state/server.pem" --key "$state/server.key" --listen 0.0.0.0 \
  --upstream "$upstream" --upstream-ca "$ca" >/dev/null 2>&1; then
  fail "a non-loopback listen address is refused"
else
  pass "a non-loopback listen address is refused"
fi

# --- rules ----------------------------------------------------------------------

cat >"$tmp/rules.json" <<EOF
[
 {"path": "^/cut\\\\.bin", "fault": "cut", "after": 100000, "times": -1},
 {"path": "^/up/cut", "method": "PUT", "fault": "cut", "after": 50000, "times": -1},
 {"path": "^/stall", "fault": "stall", "after": 1000, "seconds": 30, "times": -1},
 {"path": "^/trickle", "fault": "trickle", "rate": 200000, "times": -1},
 {"path": "^/truncate", "fault": "truncate", "after": 100000, "times": -1},
 {"path": "^/goaway", "fault": "goaway", "after": 100000, "times": -1},
 {"path": "^/excess", "fault": "excess", "extra": 16, "times": -1},
 {"path": "^/busy", "fault": "status", "status": 503, "retry_after": "7", "times": 2},
 {"path": "^/slow-down", "fault": "status", "status": 429, "retry_after": "1"},
 {"path": "^/moved", "fault": "redirect", "location": "/_login/elsewhere", "times": -1},
 {"fault": "expire_token", "token": "OLD", "real": "$rw", "valid_requests": 2},
 {"fault": "alias", "token": "NEW", "real": "$rw"}
]
EOF
start_proxy rules --rules "$tmp/rules.json"
base=https://127.0.0.1:$proxy_port
echo "chaos-proxy with rules on $base"

for v in --http2 --http1.1; do
  want_version=2
  [[ $v == --http1.1 ]] && want_version=1.1

  # Clean requests pass byte for byte.
  out=$(c "$v" "${auth[@]}" -o "$tmp/out" -w '%{http_code} %{http_version}' "$base/big.bin")
  expect "$v clean GET: 200 over the asked protocol" "200 $want_version" "$out"
  check "$v clean GET: same bytes" cmp -s "$tmp/out" "$data/big.bin"

  out=$(c "$v" "${auth[@]}" -r 1000-1999 -o "$tmp/out" -D "$tmp/headers" \
    -w '%{http_code} %{size_download}' "$base/big.bin")
  expect "$v range GET: 206, 1000 bytes" "206 1000" "$out"
  check "$v range GET: the right bytes" cmp -s "$tmp/out" \
    <(tail -c +1001 "$data/big.bin" | head -c 1000)
  expect_match "$v range GET: Content-Range passed" \
    $'[Cc]ontent-[Rr]ange: bytes 1000-1999/1048576' "$(tr -d '\r' <"$tmp/headers")"

  headers=$(c "$v" "${auth[@]}" -I "$base/hello.txt" | tr -d '\r')
  expect_match "$v HEAD: Content-Length passed" $'\n[Cc]ontent-[Ll]ength: 12\n' "$headers"
  headers=$(c "$v" -X OPTIONS -i "$base/hello.txt" | tr -d '\r')
  expect_match "$v OPTIONS: Allow passed" $'\n[Aa]llow: OPTIONS, HEAD, GET, PUT, DELETE\n' \
    "$headers"

  name=up${v//[^0-9]/}.bin
  out=$(c "$v" "${auth[@]}" -T "$data/big.bin" -o /dev/null -w '%{http_code}' \
    "$base/up/$name")
  expect_match "$v PUT: 201/204" '^20[14]$' "$out"
  check "$v PUT: same bytes on the collection" cmp -s "$data/up/$name" "$data/big.bin"

  # cut: the headers, 100000 bytes, then the connection (1.1) or stream (2) dies.
  rc=0
  out=$(c "$v" "${auth[@]}" -o /dev/null -w '%{http_code} %{size_download}' \
    "$base/cut.bin") || rc=$?
  expect "$v cut GET: 200 and 100000 bytes" "200 100000" "$out"
  expect_match "$v cut GET: curl fails (18, 56 or 92)" '^(18|56|92)$' "$rc"

  # A cut PUT never completes upstream.
  rc=0
  c "$v" "${auth[@]}" -T "$data/big.bin" -o /dev/null "$base/up/cut$name" || rc=$?
  expect_match "$v cut PUT: curl fails" '^(55|56|92|16)$' "$rc"
  check "$v cut PUT: nothing stored" test ! -e "$data/up/cut$name"

  # stall: 1000 bytes, then silence (the curl deadline ends it).
  rc=0
  out=$(c "$v" "${auth[@]}" --max-time 1 -o /dev/null -w '%{size_download}' \
    "$base/stall.bin") || rc=$?
  expect "$v stall: 1000 bytes, then the 1 s deadline (curl 28)" "1000 28" "$out $rc"

  # trickle: 200000 bytes at 200000 B/s take about a second, and arrive whole.
  out=$(c "$v" "${auth[@]}" -o "$tmp/out" -w '%{time_total}' "$base/trickle.bin")
  check "$v trickle: whole" cmp -s "$tmp/out" "$data/small.bin"
  check "$v trickle: slow (${out} s)" \
    /usr/bin/python3 -c "import sys; sys.exit(not 0.8 <= float('$out') < 5)"

  # truncate: a "clean" early end that curl still notices.
  rc=0
  out=$(c "$v" "${auth[@]}" -o /dev/null -w '%{http_code} %{size_download}' \
    "$base/truncate.bin") || rc=$?
  expect "$v truncate: 200 and 100000 bytes" "200 100000" "$out"
  expect_match "$v truncate: curl fails (18 or 92)" '^(18|92)$' "$rc"

  # status: answered by the proxy, never forwarded.
  before=$(grep -c '/busy' "$access_log" || true)
  out=$(c "$v" "${auth[@]}" -D "$tmp/headers" -o /dev/null -w '%{http_code}' \
    "$base/busy.bin")
  expect "$v status 503" 503 "$out"
  expect_match "$v status 503: Retry-After" $'[Rr]etry-[Aa]fter: 7' \
    "$(tr -d '\r' <"$tmp/headers")"
  expect "$v status 503: not forwarded" "$before" "$(grep -c '/busy' "$access_log" || true)"

  out=$(c "$v" "${auth[@]}" -D "$tmp/headers" -o /dev/null -w '%{http_code} %{redirect_url}' \
    "$base/moved.bin")
  expect "$v redirect: 302 to the location" "302 $base/_login/elsewhere" "$out"
done

# times: the 503 rule held for two requests, then the real answer (404).
out=$(c "${auth[@]}" -o /dev/null -w '%{http_code}' "$base/busy.bin")
expect "a rule's times run out" 404 "$out"
out=$(c "${auth[@]}" -o /dev/null -w '%{http_code}' "$base/slow-down")
expect "status 429 (times defaults to 1)" 429 "$out"
out=$(c "${auth[@]}" -o /dev/null -w '%{http_code}' "$base/slow-down")
expect "status 429 only once" 404 "$out"

# goaway: HTTP/2 GOAWAY ends the stream and, with it, the connection's
# other open stream; HTTP/1.1 behaves like cut.
rc=0
out=$(c --http2 "${auth[@]}" -o /dev/null -w '%{size_download}' "$base/goaway.bin") || rc=$?
expect "goaway over HTTP/2: 100000 bytes and curl 16" "100000 16" "$out $rc"
rc=0
out=$(c --http2 --parallel --parallel-max 2 "${auth[@]}" \
  -w '%{url} %{size_download} %{exitcode} %{time_total}\n' \
  -o /dev/null "$base/trickle.bin" -o /dev/null "$base/goaway.bin" 2>/dev/null |
  grep trickle) || rc=$?
expect_match "goaway over HTTP/2: the other open stream dies too" \
  '/trickle.bin [0-9]+ (16|18|56|92) ' "$out"
# ... at once: the connection ends with the GOAWAY (no wait for TLS shutdown).
check "goaway over HTTP/2: the other stream ends within 2 s (${out##* } s)" \
  /usr/bin/python3 -c "import sys; sys.exit(not float('${out##* }') < 2)"
rc=0
out=$(c --http1.1 "${auth[@]}" -o /dev/null -w '%{size_download}' "$base/goaway.bin") || rc=$?
expect "goaway over HTTP/1.1: like cut (100000 bytes, curl 18)" "100000 18" "$out $rc"

# excess: HTTP/1.1 sends 16 bytes beyond Content-Length (counted with a raw
# client); HTTP/2 an extra DATA frame, which nghttp2 refuses.
out=$(/usr/bin/python3 - "$proxy_port" "$ca" "$rw" <<'EOF'
import socket, ssl, sys
port, ca, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                     server_hostname="127.0.0.1") as s:
    s.sendall(f"GET /excess.bin HTTP/1.1\r\nHost: x\r\n"
              f"Authorization: Bearer {token}\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
head, _, body = data.partition(b"\r\n\r\n")
print(len(body) - int(next(l.split(b":")[1] for l in head.split(b"\r\n")
                             if l.lower().startswith(b"content-length"))))
EOF
) || true
expect "excess over HTTP/1.1: 16 bytes past Content-Length" 16 "$out"
if command -v nghttp >/dev/null; then
  out=$(SSL_CERT_FILE=$ca nghttp -nv -H "Authorization: Bearer $rw" \
    "$base/excess.bin" 2>&1 | grep -a -A1 'send RST_STREAM' | tr -d '\n' || true)
  expect_match "excess over HTTP/2: nghttp2 resets the stream" 'PROTOCOL_ERROR' "$out"
fi

# Tokens: OLD works twice, then expires; NEW always works.
codes=
for t in OLD OLD OLD NEW NEW NEW; do
  codes+=$(c -H "Authorization: Bearer $t" -o /dev/null -w '%{http_code} ' "$base/hello.txt")
done
expect "expire_token and alias" "200 200 401 200 200 200 " "$codes"

# Upstream connections are kept alive: 20 clean requests in a row, each on
# a connection of its own to the proxy, share one or two upstream ones.
before=$(grep -c . "$access_log")
for i in $(seq 1 20); do
  c "${auth[@]}" -o /dev/null "$base/hello.txt"
done
conns=$(tail -n +$((before + 1)) "$access_log" | sed -n 's/.* conn=\([0-9]*\)\/.*/\1/p' |
  sort -u | grep -c .)
check "upstream connections reused ($conns for 20 requests)" test "$conns" -le 2

stop_proxy
expect "stats: cut counted" 4 "$(stat_of rules faults_by_kind cut)"
expect "stats: status503 counted" 2 "$(stat_of rules faults_by_kind status503)"
expect "stats: status429 counted" 1 "$(stat_of rules faults_by_kind status429)"
expect "stats: expired_token counted" 1 "$(stat_of rules faults_by_kind expired_token)"
expect "stats: goaway counted" 3 "$(stat_of rules faults_by_kind goaway)"
expect "stats: PUT requests" 4 "$(stat_of rules requests_by_method PUT)"
expect_match "stats: bytes_down counted" '^[0-9]{7,}$' "$(stat_of rules bytes_down)"
expect_match "stats: bytes_up counted" '^[0-9]{7,}$' "$(stat_of rules bytes_up)"
expect "log: one line per request" "$(stat_of rules requests)" \
  "$(grep -c . "$tmp/rules.log")"

# --- random mode --------------------------------------------------------------

# The same seed gives the same decisions for the same requests; HEAD never
# gets a fault.
urls=()
for i in $(seq 1 40); do urls+=(-o /dev/null "$base/small.bin"); done
for run in a b; do
  start_proxy "random-$run" --fault-rate 0.3 --seed 42 --stall-seconds 0.2 \
    --kinds cut,truncate,status503,status429,stall
  base=https://127.0.0.1:$proxy_port
  for i in $(seq 1 40); do
    c -I "${auth[@]}" -o /dev/null "$base/small.bin" || true
    c "${auth[@]}" -o /dev/null "$base/small.bin" || true
  done
  stop_proxy
  awk '{print $2, $3, $5}' "$tmp/random-$run.log" >"$tmp/random-$run.decisions"
done
faults=$(stat_of random-a faults_injected)
check "random mode: some faults ($faults of 40)" test "$faults" -ge 4 -a "$faults" -le 25
check "random mode: same seed, same decisions" \
  cmp -s "$tmp/random-a.decisions" "$tmp/random-b.decisions"
expect "random mode: HEAD never faulted" 0 \
  "$(grep '^HEAD' "$tmp/random-a.decisions" | grep -vc ' -$' || true)"

# --- 127.0.0.2: the certificate does not name it ------------------------------

start_proxy alt --listen 127.0.0.2
rc=0
c "${auth[@]}" -o /dev/null "https://127.0.0.2:$proxy_port/hello.txt" || rc=$?
expect "listening on 127.0.0.2: curl sees the name mismatch (60)" 60 "$rc"
out=$(c "${auth[@]}" --resolve "localhost:$proxy_port:127.0.0.2" \
  "https://localhost:$proxy_port/hello.txt")
expect "listening on 127.0.0.2: serves under a name the certificate holds" \
  "hello chaos" "$out"
stop_proxy

checks_summary
