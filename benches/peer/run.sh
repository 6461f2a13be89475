#!/usr/bin/env bash
# labelgate beside its peers, in one run on this machine (loopback only): direct to the origin,
# Squid (plain and ssl-bump; inspects nothing), mitmproxy with a label-searching addon, and
# labelgate (intercepting and inspecting every upload). The recipe follows
# docs/peer-bench.md. Not part of .ci/run: it installs peers and takes minutes.
#
#   benches/peer/run.sh [REPS]        # default 3 reps, interleaved; prints a markdown table
#   ONLY='labelgate|direct' benches/peer/run.sh 1   # a quick look at some paths (raw results only)
#   SERVE_ONLY=1 benches/peer/run.sh                 # start everything and wait (to profile by hand)
#
# Everything it starts is stopped by PID on exit. Tools are cached in $PEER_TOOLS
# (default /tmp/labelgate-peer-tools): oha (cargo install), mitmproxy (venv).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REPS=${1:-3}
CORPUS=${LABELGATE_CORPUS:-$("$ROOT/scripts/corpus.sh")}  # ../shared/corpus, or a fetched cache
TOOLS=${PEER_TOOLS:-/tmp/labelgate-peer-tools}
W=$(mktemp -d /tmp/labelgate-peer.XXXXXX); chmod 755 "$W"  # squid runs as user proxy
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; [ -f "$W/nginx/nginx.pid" ] && kill "$(cat "$W/nginx/nginx.pid")" 2>/dev/null; [ -f "$W/squid/run/squid.pid" ] && kill "$(cat "$W/squid/run/squid.pid")" 2>/dev/null; true; }
trap cleanup EXIT

# --- tools -----------------------------------------------------------------------------------
missing=()
for b in nginx squid openssl python3 curl; do command -v "$b" >/dev/null || missing+=("$b"); done
if [ ${#missing[@]} -gt 0 ] || ! python3 -c 'import ensurepip' 2>/dev/null; then
  apt-get update -qq && apt-get install -y -qq nginx-light squid-openssl openssl python3-venv curl >/dev/null
fi
[ -x "$TOOLS/oha/bin/oha" ] || cargo install oha --locked --root "$TOOLS/oha"
[ -x "$TOOLS/venv/bin/mitmdump" ] || { python3 -m venv "$TOOLS/venv" && "$TOOLS/venv/bin/pip" install -q mitmproxy==11.0.2; }
(cd "$ROOT" && cargo build --release -q -p labelgate)
O="$TOOLS/oha/bin/oha"; LG="$ROOT/target/release/labelgate"

# --- data + PKI ------------------------------------------------------------------------------
cd "$W"; mkdir -p pki nginx/{logs,tmp} squid/{logs,run} mitm lg www
python3 "$ROOT/benches/peer/make_docx.py" d64k.docx 65536
python3 "$ROOT/benches/peer/make_docx.py" d1m.docx 1048576
python3 "$ROOT/benches/peer/make_docx.py" d10m.docx 10485760
cp "$CORPUS/files/lab_caf_identity-baseline-discipline-template.docx" labeled.docx
q() { "$@" >/dev/null 2>&1; }
q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout pki/upca.key -out pki/upca.pem -days 30 -subj "/CN=Up CA"
q openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout pki/up.key -out pki/up.csr -subj /CN=localhost
printf "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n" > pki/ext.cnf
q openssl x509 -req -in pki/up.csr -CA pki/upca.pem -CAkey pki/upca.key -CAcreateserial -out pki/up.pem -days 30 -extfile pki/ext.cnf
q openssl req -x509 -newkey rsa:2048 -nodes -keyout pki/squidca.key -out pki/squidca.pem -days 30 -subj "/CN=Squid CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

# --- sink: nginx front (18080 h1, 18443 TLS) reads every byte, proxy_pass to an inner 200 ------
cat > nginx/nginx.conf <<NGX
worker_processes 1; pid $W/nginx/nginx.pid; error_log $W/nginx/logs/error.log warn; daemon off;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $W/nginx/tmp; proxy_temp_path $W/nginx/tmp;
  client_max_body_size 512m; client_body_buffer_size 2m; keepalive_requests 100000;
  upstream inner { server 127.0.0.1:18081; keepalive 32; }
  server { listen 127.0.0.1:18080; listen 127.0.0.1:18443 ssl http2;
    ssl_certificate $W/pki/up.pem; ssl_certificate_key $W/pki/up.key;
    location / { proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://inner; } }
  server { listen 127.0.0.1:18081; location / { return 200 "ok len=\$content_length\n"; } } }
NGX
setsid nginx -c "$W/nginx/nginx.conf" </dev/null >/dev/null 2>&1 &

# --- squid: 3128 plain, 3129 ssl-bump ----------------------------------------------------------
/usr/lib/squid/security_file_certgen -c -s "$W/squid/ssl_db" -M 16MB >/dev/null
cat pki/squidca.pem pki/squidca.key > squid/ca.pem; chown -R proxy:proxy squid; chmod 600 squid/ca.pem
cat > squid/squid.conf <<SQ
http_port 127.0.0.1:3128
http_port 127.0.0.1:3129 ssl-bump generate-host-certificates=on dynamic_cert_mem_cache_size=16MB tls-cert=$W/squid/ca.pem
sslcrtd_program /usr/lib/squid/security_file_certgen -s $W/squid/ssl_db -M 16MB
sslcrtd_children 4 startup=2 idle=1
tls_outgoing_options cafile=$W/pki/upca.pem
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
acl lo src 127.0.0.1/32
http_access allow lo
http_access deny all
cache deny all
request_body_max_size 512 MB
pid_filename $W/squid/run/squid.pid
access_log none
cache_log $W/squid/logs/cache.log
cache_effective_user proxy
icp_port 0
snmp_port 0
dns_nameservers 127.0.0.1
shutdown_lifetime 1 seconds
SQ
setsid squid -N -f "$W/squid/squid.conf" </dev/null >/dev/null 2>&1 &
SQUID_LAUNCH=$!

# --- mitmdump + addon ------------------------------------------------------------------------
setsid "$TOOLS/venv/bin/mitmdump" --listen-host 127.0.0.1 -p 18888 --set confdir="$W/mitm/conf" \
  --set ssl_verify_upstream_trusted_ca="$W/pki/upca.pem" -s "$ROOT/benches/peer/dlp_addon.py" -q </dev/null >/dev/null 2>&1 &
MITM=$!; PIDS+=("$MITM")

# --- labelgate: the shipped config (labeled uploads to unsanctioned apps are blocked), with its
# built-in refusal of loopback destinations opened for the sink, which listens there ----------
"$LG" ca export --state-dir "$W/lg" > "$W/lg/ca.pem" 2>/dev/null
sed -e 's|^allow_destinations = \[\]|allow_destinations = ["127.0.0.0/8", "::1/128", "localhost"]|' \
    -e 's|^connect_ports = \[443\]|connect_ports = [443, 18443]|' "$ROOT/config/labelgate.toml" > "$W/lg/labelgate.toml"
setsid "$LG" serve --config "$W/lg/labelgate.toml" --listen 127.0.0.1:18890 --admin-listen 127.0.0.1:19180 --state-dir "$W/lg" \
  --upstream-ca "$W/pki/upca.pem" </dev/null >"$W/lg/audit.jsonl" 2>"$W/lg/stderr.log" &
LGPID=$!; PIDS+=("$LGPID")

for i in $(seq 1 100); do
  [ -f "$W/mitm/conf/mitmproxy-ca-cert.pem" ] && [ -f "$W/squid/run/squid.pid" ] && curl -s -o /dev/null 127.0.0.1:19180/healthz && break
  sleep 0.2
done
SQUID=$(cat "$W/squid/run/squid.pid"); PIDS+=("$SQUID")
NGINX=$(cat "$W/nginx/nginx.pid")

# --- correctness in the same run ---------------------------------------------------------------
check() { # name expected-status curl-args...
  local name=$1 want=$2; shift 2
  local got; got=$(curl -s -o /dev/null -w '%{http_code}' -H 'Expect:' --data-binary @labeled.docx "$@")
  echo "labeled.docx via $name: HTTP $got (want $want)"; [ "$got" = "$want" ] || { echo "unexpected status" >&2; exit 1; }
}
check direct-https 200 --cacert pki/upca.pem https://localhost:18443/up
check squid-bump 200 --cacert pki/squidca.pem -x http://127.0.0.1:3129 https://localhost:18443/up
check mitmproxy 403 --cacert mitm/conf/mitmproxy-ca-cert.pem -x http://127.0.0.1:18888 https://localhost:18443/up
check labelgate 403 --cacert lg/ca.pem -x http://127.0.0.1:18890 https://localhost:18443/up
check labelgate-http 403 -x http://127.0.0.1:18890 http://localhost:18080/up

# --- measurement -----------------------------------------------------------------------------
if [ -n "${SERVE_ONLY:-}" ]; then  # SERVE_ONLY=1: leave everything running (for perf), Ctrl-C stops it
  echo "serving from $W; labelgate pid $LGPID (proxy 127.0.0.1:18890), squid $SQUID, mitmdump $MITM" >&2
  sleep infinity
fi
TCK=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15+$16+$17}' "/proc/$1/stat"; }
RESULTS="$W/results.tsv"
run() { # rep case path pid n c body args...
  local rep=$1 case=$2 path=$3 pid=$4 n=$5 c=$6 body=$7; shift 7
  [[ "$path" =~ ${ONLY:-.} ]] || return 0  # ONLY=regex: measure only the matching paths
  local c0=0 c1=0; [ "$pid" != - ] && c0=$(cpu "$pid")
  local json; json=$("$O" --no-tui -n "$n" -c "$c" -m POST -D "$body" -H 'content-type: application/vnd.openxmlformats-officedocument.wordprocessingml.document' --output-format json "$@")
  [ "$pid" != - ] && c1=$(cpu "$pid")
  python3 - "$rep" "$case" "$path" "$n" "$c0" "$c1" "$TCK" "$json" >> "$RESULTS" <<'PY'
import json, sys
rep, case, path, n, c0, c1, tck, raw = sys.argv[1:]
d = json.loads(raw); s = d["summary"]; p = d["latencyPercentiles"]
codes = d.get("statusCodeDistribution", {}); ok = sum(v for k, v in codes.items() if k.startswith("2"))
if ok != int(n): print(f"# {case} {path}: only {ok}/{n} 2xx: {codes} {d.get('errorDistribution')}", file=sys.stderr)
cpu_ms = (float(c1) - float(c0)) * 1000 / float(tck) / int(n)
print("\t".join(map(str, [rep, case, path, round(s["requestsPerSec"], 1), round(p["p50"] * 1e3, 2), round(p["p99"] * 1e3, 2), round(cpu_ms, 2), ok, n])))
PY
}
paths() { # rep case n c body
  local r=$1 k=$2 n=$3 c=$4 b=$5
  run "$r" "$k" direct-http - "$n" "$c" "$b" http://127.0.0.1:18080/up
  run "$r" "$k" squid-http "$SQUID" "$n" "$c" "$b" -x http://127.0.0.1:3128 http://localhost:18080/up
  run "$r" "$k" mitmproxy-http "$MITM" "$n" "$c" "$b" -x http://127.0.0.1:18888 http://localhost:18080/up
  run "$r" "$k" labelgate-http "$LGPID" "$n" "$c" "$b" -x http://127.0.0.1:18890 http://localhost:18080/up
  run "$r" "$k" direct-https - "$n" "$c" "$b" --cacert pki/upca.pem https://localhost:18443/up
  run "$r" "$k" squid-bump "$SQUID" "$n" "$c" "$b" --cacert pki/squidca.pem -x http://127.0.0.1:3129 https://localhost:18443/up
  run "$r" "$k" mitmproxy-intercept "$MITM" "$n" "$c" "$b" --cacert mitm/conf/mitmproxy-ca-cert.pem -x http://127.0.0.1:18888 https://localhost:18443/up
  run "$r" "$k" labelgate-intercept "$LGPID" "$n" "$c" "$b" --cacert lg/ca.pem -x http://127.0.0.1:18890 https://localhost:18443/up
}
for r in $(seq 1 "$REPS"); do
  echo "rep $r/$REPS" >&2
  paths "$r" "1MiB c8" 300 8 d1m.docx
  paths "$r" "1MiB c1" 100 1 d1m.docx
  paths "$r" "10MiB c8" 40 8 d10m.docx
  paths "$r" "10MiB c1" 20 1 d10m.docx
  run "$r" "64KiB c1" direct-http - 300 1 d64k.docx http://127.0.0.1:18080/up
  run "$r" "64KiB c1" labelgate-http "$LGPID" 300 1 d64k.docx -x http://127.0.0.1:18890 http://localhost:18080/up
  run "$r" "64KiB c1" direct-https - 300 1 d64k.docx --cacert pki/upca.pem https://localhost:18443/up
  run "$r" "64KiB c1" labelgate-intercept "$LGPID" 300 1 d64k.docx --cacert lg/ca.pem -x http://127.0.0.1:18890 https://localhost:18443/up
done

# --- memory: 200 concurrent 10 MiB intercepted uploads ------------------------------------------
rss() { awk '/VmHWM/{print int($2/1024)}' "/proc/$1/status"; }
echo 5 > "/proc/$LGPID/clear_refs"; before=$(rss "$LGPID")
run mem "200x10MiB c200" labelgate-intercept "$LGPID" 200 200 d10m.docx --cacert lg/ca.pem -x http://127.0.0.1:18890 https://localhost:18443/up
after=$(rss "$LGPID")
echo 5 > "/proc/$SQUID/clear_refs"
run mem "200x10MiB c200" squid-bump "$SQUID" 200 200 d10m.docx --cacert pki/squidca.pem -x http://127.0.0.1:3129 https://localhost:18443/up
squid_rss=$(rss "$SQUID")

python3 "$ROOT/benches/peer/table.py" "$RESULTS" "$before" "$after" "$squid_rss"
echo "raw results: $RESULTS" >&2
