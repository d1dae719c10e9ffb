#!/usr/bin/env bash
# Fault benchmark: REGISTERs at a steady rate through a whole Redis outage (redis-server shut
# down) and a whole MySQL outage (connections cut by a proxy), against the real service.
#
#   nsrun bench/faults/run.sh     # ~3 minutes; table on stdout and in bench/faults/RESULTS.md
#
# Reports, for the requests sent during each outage: answers by status, p50/p99/max latency,
# unanswered requests; the service's goroutines and RSS sampled every second during the outage;
# the time from the backend's return to the first successful registration (REGISTER, 401,
# REGISTER, 200); and the bindings written before the outage that were lost, changed, or whose
# TTL does not match the time elapsed.
#
# Environment: RATE (500), OUTAGE (60s), PHONES (1000), MODE (redis,mysql), OUT (a temp dir).
# Needs redis-server, MariaDB and the jambonz schema: scripts/test.sh --services-only starts them
# (state in $OUT/services) unless TEST_MYSQL_PORT is already set. The driver serves the
# registration webhook on 127.0.0.1:4000 (where the test database points) and SIP on
# 127.0.0.1:15310: run it in a private network namespace (nsrun) on a shared machine.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/bench-faults.XXXXXX)}
RATE=${RATE:-500} OUTAGE=${OUTAGE:-60s} PHONES=${PHONES:-1000} MODE=${MODE:-redis,mysql}
PATH=$PATH:/usr/sbin:/sbin:/usr/local/go/bin
mkdir -p "$OUT"
if [ -z "${TEST_MYSQL_PORT:-}" ]; then
	export TEST_STATE_DIR=$OUT/services
	eval "$("$repo/scripts/test.sh" --services-only)"
	trap '"$repo/scripts/test.sh" --stop >/dev/null 2>&1 || true' EXIT
fi
cd "$repo"
go build -o "$OUT/sbc-sip-sidecar" ./cmd/sbc-sip-sidecar
go build -o "$OUT/faults" ./bench/faults
"$OUT/faults" -bin "$OUT/sbc-sip-sidecar" -mode "$MODE" -rate "$RATE" -outage "$OUTAGE" -phones "$PHONES" \
	-work "$OUT" -out "$here/RESULTS.md"
echo "bench: logs in $OUT" >&2
