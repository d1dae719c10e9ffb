#!/usr/bin/env bash
# Soak test: REGISTERs with digest auth (clients table) at a constant rate for
# a long time; samples the service's RSS and goroutines from /metrics.
#
#   bench/soak/run.sh [RATE] [SECONDS]     defaults: 300/s for 600 s
#
# Starts its own Redis and MariaDB (scripts/test.sh --services-only, state in
# /tmp/sbc-soak), 20,000 clients rows, the service (HTTP_PORT 17990) and sipp
# on loopback. Bindings are granted 30 s, so users cycle through the full
# challenge + authenticate + bind path, never the cache. Writes
# bench/soak/results/<date>.csv (samples) and prints a summary.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rate=${1:-300}
secs=${2:-600}
users=20000
sip_port=17960
http_port=17990
work=$(mktemp -d /tmp/sbc-soak.XXXXXX)
export TEST_STATE_DIR=/tmp/sbc-soak TEST_REDIS_PORT=${TEST_REDIS_PORT:-16388} TEST_MYSQL_PORT=${TEST_MYSQL_PORT:-13388}
export JAMBONZ_DB_DIR=${JAMBONZ_DB_DIR:-$repo/../shared/jambonz-db}
scen=${SIPP_SCENARIOS_DIR:-$repo/../shared/sipp-scenarios}

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
	echo "DELETE FROM clients WHERE account_sid='50a50a50-0000-4000-8000-000000000001';"
	echo "DELETE FROM accounts WHERE account_sid='50a50a50-0000-4000-8000-000000000001';"
	echo "INSERT INTO accounts (account_sid, service_provider_sid, name, sip_realm, webhook_secret) VALUES ('50a50a50-0000-4000-8000-000000000001','3f35518f-5a0d-4c2e-90a5-2407bb3b36f0','soak','soak.jambonz.org','x');"
	echo "INSERT INTO clients (client_sid, account_sid, username, password) VALUES"
	for i in $(seq 0 $((users - 1))); do
		sep=","; [ "$i" -eq $((users - 1)) ] && sep=";"
		printf "(UUID(),'50a50a50-0000-4000-8000-000000000001','u%05d','pw')%s\n" "$i" "$sep"
	done
} > "$work/clients.sql"
mysql_cmd=$(command -v mariadb || command -v mysql)
"$mysql_cmd" -h "$TEST_MYSQL_HOST" -P "$TEST_MYSQL_PORT" -u "$TEST_MYSQL_USER" -p"$TEST_MYSQL_PASSWORD" "$TEST_MYSQL_DATABASE" < "$work/clients.sql"
{
	echo "SEQUENTIAL"
	for i in $(seq 0 $((users - 1))); do printf "u%05d;soak.jambonz.org;[authentication username=u%05d password=pw]\n" "$i" "$i"; done
} > "$work/users.csv"

(cd "$repo" && go build -o "$work/sbc-sip-sidecar" ./cmd/sbc-sip-sidecar)
JAMBONES_MYSQL_HOST=$TEST_MYSQL_HOST JAMBONES_MYSQL_PORT=$TEST_MYSQL_PORT JAMBONES_MYSQL_USER=$TEST_MYSQL_USER \
JAMBONES_MYSQL_PASSWORD=$TEST_MYSQL_PASSWORD JAMBONES_MYSQL_DATABASE=$TEST_MYSQL_DATABASE \
JAMBONES_REDIS_HOST=${TEST_REDIS_ADDR%:*} JAMBONES_REDIS_PORT=${TEST_REDIS_ADDR#*:} \
SIP_LISTEN=udp:127.0.0.1:$sip_port HTTP_PORT=$http_port SBC_SOCKET_PATH=$work/cli.sock \
SIP_RATE_LIMIT=0 AUTH_FAILURE_LIMIT=0 AUTH_FAILURE_AOR_LIMIT=0 JAMBONES_LOGLEVEL=warn \
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
calls=$((rate * secs))
sipp 127.0.0.1:$sip_port -sf "$repo/bench/soak/register-30.xml" -inf "$work/users.csv" -i 127.0.0.1 -p 17961 \
	-r "$rate" -m "$calls" -l $((rate * 5)) -t u1 -nostdin -timeout $((secs + 60))s \
	-trace_stat -stf "$work/stat.csv" -fd 10 >/dev/null 2>"$work/sipp.err" &
spid=$!
t=0
while kill -0 "$spid" 2>/dev/null; do sleep 10; t=$((t + 10)); sample "$t"; done
wait "$spid" && sipp_rc=0 || sipp_rc=$?
sleep 35 # bindings expire (30 s), the prune loop runs
sample $((t + 35))

last=$(tail -n 1 "$work/stat.csv")
hdr=$(head -n 1 "$work/stat.csv")
col() { awk -F';' -v h="$hdr" -v want="$1" 'BEGIN{n=split(h,a,";"); for(i=1;i<=n;i++) if(a[i]==want) c=i} {print $c}' <<<"$last"; }
echo "== soak summary ($rate/s x ${secs}s)"
echo "sipp exit: $sipp_rc  successful: $(col SuccessfulCall\(C\))  failed: $(col FailedCall\(C\))  retransmissions: $(col Retransmissions\(C\))"
echo "samples (elapsed_s,rss_mb,goroutines,active_bindings):"
cat "$out"
