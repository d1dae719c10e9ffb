#!/usr/bin/env bash
# OPTIONS check-in load against the built service (issue 3 acceptance):
# SOURCES loopback sources (127.0.1.1 ...), the first half feature servers (X-FS-Status: open
# + X-FS-ServiceUrl), the second half RTP servers (X-RTP-Status: open), each sending RATE
# check-ins per second for DURATION seconds, with a short EXPIRES_INTERVAL so that expiry sweeps
# run all along. Defaults: 50 sources x 4/s = 200 check-ins/s for 60 s.
#
# Then it checks that the sets hold exactly the expected members, waits SETTLE seconds (UDP
# transactions live 32 s, Timer J) and counts the goroutines (SIGQUIT stack dump) against an
# idle baseline measured first on a fresh process. RSS is sampled every 5 s.
#
#   eval "$(scripts/test.sh --services-only)"   # Redis + MariaDB
#   bench/options/run.sh                        # results in $OUT (printed at the end)
#
# Environment: SOURCES (50), RATE (4), DURATION (60), SETTLE (40), SIP_PORT (16340),
# SRC_PORT (16341), EXPIRES (5000 ms), CHECK (500 ms), OUT (a temp dir).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
SOURCES=${SOURCES:-50} RATE=${RATE:-4} DURATION=${DURATION:-60} SETTLE=${SETTLE:-40}
SIP_PORT=${SIP_PORT:-16340} SRC_PORT=${SRC_PORT:-16341} EXPIRES=${EXPIRES:-5000} CHECK=${CHECK:-500}
OUT=${OUT:-$(mktemp -d /tmp/bench-options.XXXXXX)}
: "${TEST_REDIS_ADDR:?start the services first: eval \"\$(scripts/test.sh --services-only)\"}"
: "${TEST_MYSQL_HOST:?start the services first}"
mkdir -p "$OUT"
cluster=bench$$
redis() { redis-cli -h "${TEST_REDIS_ADDR%:*}" -p "${TEST_REDIS_ADDR#*:}" "$@"; }

(cd "$repo" && go build -o "$OUT/sbc-sip-sidecar" ./cmd/sbc-sip-sidecar)
svc_env=(env -i PATH="$PATH" GOTRACEBACK=all
	JAMBONES_MYSQL_HOST="$TEST_MYSQL_HOST" JAMBONES_MYSQL_PORT="$TEST_MYSQL_PORT"
	JAMBONES_MYSQL_USER="$TEST_MYSQL_USER" JAMBONES_MYSQL_PASSWORD="$TEST_MYSQL_PASSWORD"
	JAMBONES_MYSQL_DATABASE="$TEST_MYSQL_DATABASE"
	JAMBONES_REDIS_HOST="${TEST_REDIS_ADDR%:*}" JAMBONES_REDIS_PORT="${TEST_REDIS_ADDR#*:}"
	JAMBONES_CLUSTER_ID="$cluster" JAMBONES_LOGLEVEL=info
	SIP_LISTEN="udp:127.0.0.1:$SIP_PORT" SBC_SOCKET_PATH="$OUT/cli.sock"
	EXPIRES_INTERVAL="$EXPIRES" CHECK_EXPIRES_INTERVAL="$CHECK")

start() { # start the service, logging to $1; sets pid
	"${svc_env[@]}" "$OUT/sbc-sip-sidecar" >"$1" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		grep -q "native front listening" "$1" && return 0
		sleep 0.1
	done
	echo "service did not start:" >&2
	cat "$1" >&2
	exit 1
}
dump() { # SIGQUIT the service: it exits with a stack dump of every goroutine
	kill -QUIT "$pid"
	wait "$pid" 2>/dev/null || true
}
goroutines() { grep -c '^goroutine [1-9][0-9]* ' "$1" || true; }
cleanup() {
	kill "${pid:-}" 2>/dev/null || true
	redis --scan --pattern "$cluster:*" | xargs -r redis del >/dev/null
}
trap cleanup EXIT

# 1. Baseline: a fresh process, idle for 5 s.
start "$OUT/baseline.log"
sleep 5
dump
base_g=$(goroutines "$OUT/baseline.log")

# 2. Load.
start "$OUT/service.log"
echo "t_s,rss_kb" >"$OUT/rss.csv"
(
	t=0
	while kill -0 "$pid" 2>/dev/null; do
		echo "$t,$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null)" >>"$OUT/rss.csv"
		sleep 5
		t=$((t + 5))
	done
) &
sampler=$!
calls=$((RATE * DURATION))
half=$((SOURCES / 2))
sipp_pids=()
for i in $(seq 1 "$SOURCES"); do
	kind=fs
	[ "$i" -gt "$half" ] && kind=rtp
	mkdir -p "$OUT/sipp/$i"
	(cd "$OUT/sipp/$i" && exec sipp "127.0.0.1:$SIP_PORT" -sf "$here/uac-checkin-$kind.xml" \
		-i "127.0.1.$i" -p "$SRC_PORT" -r "$RATE" -m "$calls" -l 20 -nostdin \
		-timeout "$((DURATION + 30))s" -trace_stat -fd 3600 >sipp.out 2>&1) &
	sipp_pids+=($!)
done
failed_runs=0
for p in "${sipp_pids[@]}"; do wait "$p" || failed_runs=$((failed_runs + 1)); done
load_end=$(date +%s)
cpu_ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")

# 3. Sets must hold exactly the sources.
want_fs=$(for i in $(seq 1 "$half"); do echo "127.0.1.$i:$SRC_PORT"; done | sort)
want_url=$(for i in $(seq 1 "$half"); do echo "http://127.0.1.$i:3000"; done | sort)
want_rtp=$(for i in $(seq $((half + 1)) "$SOURCES"); do echo "127.0.1.$i"; done | sort)
sets_ok=yes
[ "$(redis smembers "$cluster:active-fs" | sort)" = "$want_fs" ] || sets_ok=no
[ "$(redis smembers "$cluster:fs-service-url" | sort)" = "$want_url" ] || sets_ok=no
[ "$(redis smembers "$cluster:active-rtp" | sort)" = "$want_rtp" ] || sets_ok=no
n_fs=$(redis scard "$cluster:active-fs") n_url=$(redis scard "$cluster:fs-service-url") n_rtp=$(redis scard "$cluster:active-rtp")

# 4. Expiry after the load: nobody checks in any more.
sleep $(((EXPIRES + 2 * CHECK) / 1000 + 1))
left=$(($(redis scard "$cluster:active-fs") + $(redis scard "$cluster:active-rtp") + $(redis scard "$cluster:fs-service-url")))

# 5. Goroutines once the UDP transactions have ended.
sleep "$SETTLE"
dump
end_g=$(goroutines "$OUT/service.log")
wait "$sampler" 2>/dev/null || true

# sipp statistics: columns SuccessfulCall(C)=16, FailedCall(C)=18, Retransmissions(C)=58.
read -r ok fail retrans < <(for f in "$OUT"/sipp/*/*.csv; do tail -1 "$f"; done |
	awk -F';' '{s += $16; f += $18; r += $58} END {print s, f, r}')
rss_first=$(awk -F, 'NR == 3 {print $2}' "$OUT/rss.csv")
rss_max=$(awk -F, 'NR > 1 && $2 > m {m = $2} END {print m}' "$OUT/rss.csv")
rss_load_end=$(awk -F, -v n="$(((DURATION / 5) + 2))" 'NR == n {print $2}' "$OUT/rss.csv")

cat <<EOF | tee "$OUT/summary.txt"
sources=$SOURCES rate_per_source=${RATE}/s duration=${DURATION}s target_rate=$((SOURCES * RATE))/s
check-ins: successful=$ok failed=$fail retransmissions=$retrans sipp_runs_failed=$failed_runs
sets after load: active-fs=$n_fs fs-service-url=$n_url active-rtp=$n_rtp exact=$sets_ok
members left ${EXPIRES}ms after the load: $left
service CPU during the load: $(awk -v t="$cpu_ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / hz}')s (user+sys)
RSS kB: at 10s=$rss_first at end of load=$rss_load_end max=$rss_max (samples in $OUT/rss.csv)
goroutines: idle baseline=$base_g after load+${SETTLE}s=$end_g
load ended at $(date -d "@$load_end" +%T); outputs in $OUT
EOF
[ "$fail" = 0 ] && [ "$failed_runs" = 0 ] && [ "$sets_ok" = yes ] && [ "$left" = 0 ]
