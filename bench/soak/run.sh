#!/usr/bin/env bash
# Soak test: REGISTERs with digest auth (clients table) at a constant rate for
# a long time; samples the service's RSS and goroutines from /metrics.
#
#   bench/soak/run.sh [RATE] [SECONDS]     defaults: 1500/s (half the clients-path
#                                          maximum in bench/RESULTS.md) for 600 s
#
# Starts its own Redis and MariaDB (scripts/test.sh --services-only, state in
# /tmp/sbc-soak), 20,000 clients rows in 200 accounts (100 each, as in
# bench/register), the service (HTTP_PORT 17990) and two sipp processes on
# loopback (one sipp process saturates near 1,000 calls/s). Bindings are granted 30 s, so users cycle through the full
# challenge + authenticate + bind path, never the cache. Writes
# bench/soak/results/<date>.csv (samples) and prints a summary.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rate=${1:-1500}
secs=${2:-600}
users=20000
sip_port=17960
http_port=17980
work=$(mktemp -d /tmp/sbc-soak.XXXXXX)
export TEST_STATE_DIR=/tmp/sbc-soak TEST_REDIS_PORT=${TEST_REDIS_PORT:-16388} TEST_MYSQL_PORT=${TEST_MYSQL_PORT:-13388}

pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	"$repo/scripts/test.sh" --stop >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

eval "$("$repo/scripts/test.sh" --services-only)"
echo "soak: generating $users clients" >&2
{
	echo "DELETE c FROM clients c JOIN accounts a ON a.account_sid = c.account_sid WHERE a.sip_realm LIKE '%.soak.local';"
	echo "DELETE FROM accounts WHERE sip_realm LIKE '%.soak.local';"
	for a in $(seq 0 $((users / 100 - 1))); do
		printf "INSERT INTO accounts (account_sid, service_provider_sid, name, sip_realm, webhook_secret) VALUES ('50a50a50-0000-4000-8000-%012d','3f35518f-5a0d-4c2e-90a5-2407bb3b36f0','soak %d','a%03d.soak.local','x');\n" "$a" "$a" "$a"
	done
	echo "INSERT INTO clients (client_sid, account_sid, username, password) VALUES"
	for i in $(seq 0 $((users - 1))); do
		sep=","; [ "$i" -eq $((users - 1)) ] && sep=";"
		printf "(UUID(),'50a50a50-0000-4000-8000-%012d','u%05d','pw')%s\n" $((i / 100)) "$i" "$sep"
	done
} > "$work/clients.sql"
mysql_cmd=$(command -v mariadb || command -v mysql)
"$mysql_cmd" -h "$TEST_MYSQL_HOST" -P "$TEST_MYSQL_PORT" -u "$TEST_MYSQL_USER" -p"$TEST_MYSQL_PASSWORD" "$TEST_MYSQL_DATABASE" < "$work/clients.sql"
for p in 0 1; do
	{
		echo "SEQUENTIAL"
		for i in $(seq "$p" 2 $((users - 1))); do
			printf "u%05d;a%03d.soak.local;[authentication username=u%05d password=pw]\n" "$i" $((i / 100)) "$i"
		done
	} > "$work/users$p.csv"
done

(cd "$repo" && go build -o "$work/sbc-sip-sidecar" ./cmd/sbc-sip-sidecar)
JAMBONES_MYSQL_HOST=$TEST_MYSQL_HOST JAMBONES_MYSQL_PORT=$TEST_MYSQL_PORT JAMBONES_MYSQL_USER=$TEST_MYSQL_USER \
JAMBONES_MYSQL_PASSWORD=$TEST_MYSQL_PASSWORD JAMBONES_MYSQL_DATABASE=$TEST_MYSQL_DATABASE \
JAMBONES_REDIS_HOST=${TEST_REDIS_ADDR%:*} JAMBONES_REDIS_PORT=${TEST_REDIS_ADDR#*:} \
SIP_LISTEN=udp:127.0.0.1:$sip_port HTTP_PORT=$http_port SBC_SOCKET_PATH=$work/cli.sock \
SIP_RATE_LIMIT=0 AUTH_FAILURE_LIMIT=0 AUTH_FAILURE_AOR_LIMIT=0 JAMBONES_LOGLEVEL=${JAMBONES_LOGLEVEL:-info} PPROF=${PPROF:-0} \
	"$work/sbc-sip-sidecar" 2>"$work/service.log" &
pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$http_port/health" >/dev/null && break; sleep 0.1; done

mkdir -p "$repo/bench/soak/results"
out="$repo/bench/soak/results/$(date -u +%Y%m%dT%H%M%SZ)-r${rate}-s${secs}.csv"
echo "elapsed_s,rss_mb,goroutines,active_bindings" > "$out"
sample() {
	local m
	m=$(curl -sf "http://127.0.0.1:$http_port/metrics") || return 0
	awk -v t="$1" '
		/^process_resident_memory_bytes /{rss=$2/1048576}
		/^go_goroutines /{g=$2}
		/^sbc_sip_sidecar_active_bindings /{b=$2}
		END{printf "%d,%.1f,%d,%d\n", t, rss, g, b}' <<<"$m" >> "$out"
}
sample 0
echo "soak: $rate REGISTER/s for $secs s" >&2
half=$((rate / 2))
calls=$((half * secs))
spids=()
for p in 0 1; do
	sipp 127.0.0.1:$sip_port -sf "$repo/bench/soak/register-30.xml" -inf "$work/users$p.csv" -i 127.0.0.1 -p $((17961 + p)) \
		-r "$half" -m "$calls" -l $((half * 5)) -t u1 -nostdin -timeout $((secs + 60))s \
		-trace_stat -stf "$work/stat$p.csv" -fd 10 >/dev/null 2>"$work/sipp$p.err" &
	spids+=($!)
done
t=0
while kill -0 "${spids[0]}" 2>/dev/null || kill -0 "${spids[1]}" 2>/dev/null; do sleep 10; t=$((t + 10)); sample "$t"; done
sipp_rc=0
for sp in "${spids[@]}"; do wait "$sp" || sipp_rc=$?; done
sleep 35 # bindings expire (30 s), the prune loop runs
sample $((t + 35))

stat() { # sum of column $1 over both sipp processes' last statistics line
	local total=0 f hdr last v
	for f in "$work/stat0.csv" "$work/stat1.csv"; do
		hdr=$(head -n 1 "$f"); last=$(tail -n 1 "$f")
		v=$(awk -F';' -v h="$hdr" -v want="$1" 'BEGIN{n=split(h,a,";"); for(i=1;i<=n;i++) if(a[i]==want) c=i} {print $c}' <<<"$last")
		total=$((total + v))
	done
	echo "$total"
}
echo "== soak summary ($rate/s x ${secs}s, 2 sipp processes)"
echo "sipp exit: $sipp_rc  successful: $(stat 'SuccessfulCall(C)')  failed: $(stat 'FailedCall(C)')  retransmissions: $(stat 'Retransmissions(C)')"
echo "samples (elapsed_s,rss_mb,goroutines,active_bindings):"
cat "$out"
