#!/usr/bin/env bash
# REGISTER benchmark: this service and Kamailio side by side, same machine, same run; the
# service also behind a real drachtio-server (its drachtio front), when one is found.
#
#   bench/run.sh            # ~10 minutes; tables in bench/RESULTS.md, raw data in bench/results.json
#
# What it does (every step is in this file or in bench/register):
#  1. installs what is missing with apt-get (sip-tester, kamailio, kamailio-mysql-modules,
#     redis-server, mariadb-server, gcc);
#  2. starts its own redis-server and MariaDB (scripts/test.sh --services-only on
#     BENCH_REDIS_PORT/BENCH_MYSQL_PORT, state in $OUT/services), loads the jambonz schema,
#     100,000 generated clients (passwords encrypted with ENCRYPTION_SECRET), 100 per account
#     (realms a000.bench.local ..., no webhook; the scenarios use the first 10,000, the memory
#     measurement all), 100 webhook-path accounts h000.hook.local ... sharing the 10,000 users
#     in turn (user i in account i mod 100; their registration webhooks served by the driver),
#     and Kamailio's schema (standard + auth_db from kamailio-mysql-modules) in the database
#     `kamailio` with a `subscriber` row (ha1) per user;
#  3. builds bench/clockshim (LD_PRELOAD for sipp: a fine clock instead of the 4 ms coarse one),
#     the service and the driver;
#  4. runs bench/register: for each system and scenario (a fresh process of the system per case,
#     so a case's peak memory is its own), steps the sipp rate up, then writes
#     $OUT/results.json and $OUT/RESULTS.md; both are copied into bench/.
#
# Systems: ours (the service's native front on UDP), kamailio (bindings in memory: the reference),
# kamailio-wt (the same, writing each binding through to MySQL, usrloc db_mode 1; full registrations
# only unless ONLY names its other cases), and ours-drachtio: drachtio-server
# owns the SIP port, sipp sends to it, and the service connects to it as its client
# (DRACHTIO_HOST/PORT/SECRET), as in a jambonz SBC. Its CPU is both processes' (drachtio-server's
# share in its own column). The binary is scripts/test.sh's TEST_DRACHTIO_BIN (default
# ../shared/tools/drachtio/drachtio beside the repository; test.sh installs its runtime libraries);
# without one these cases are left out. By default only ours-drachtio-clients-register-auth runs;
# ONLY can name its other cases (ours-drachtio-webhook-register-auth, ...).
# Optional system original: the original Node.js sidecar, when ORIGINAL_DIR names a checkout of
# the public jambonz/sbc-sip-sidecar with its npm dependencies installed (this script does not
# fetch or install it). It runs `node app.js` there behind the same drachtio-server, with the same
# MySQL, Redis and secrets; by default original-webhook-register-auth, ONLY can name
# original-clients-register-auth. Without ORIGINAL_DIR its cases are left out (docs/performance.md).
#
# Environment: OUT (a temp dir), BENCH_REDIS_PORT (17990), BENCH_MYSQL_PORT (17991),
# DRACHTIO_LOGLEVEL (info, as a jambonz SBC runs it), ORIGINAL_DIR (unset: no original), STEP (10s), PROCS (4), USERS (10000), MEM_USERS (100000), MEM_RATE (1000), RATES
# (1000,2000,4000,8000), REPEATS (2), ONLY (all cases; names as in RESULTS.md, plus mem-ours and
# mem-kamailio; with ONLY the generated part of RESULTS.md is left alone unless RECORD=1),
# KEEP=1 keeps the services running, BASELINE (a git ref, e.g. main: that revision
# is built from `git archive` and measured as the system "before", after the others, so a
# change is compared with its baseline in the same run; its cases are named before-...),
# BASELINE_ENV (space-separated NAME=value added to the baseline's environment, e.g.
# BASELINE=HEAD BASELINE_ENV=REGISTRATION_EVENTS=off measures a setting's cost in one run),
# BASELINE_GO (the go command that builds the baseline, e.g. another toolchain or a patched
# runtime's bin/go: the same source measured with two builds), SYSCALLS=1 (count each run's
# system calls with perf stat; tracing costs the systems CPU, so not for the CPU figures),
# PERF_RECORD=1 (perf record -g of every run, kernel stacks included, in $OUT/perf; for
# profiles, not for the figures).
#
# The ladder climbs past its top (doubling) until a rate fails, then bisects to within an eighth,
# for every system (a system failing the ladder's bottom is stepped down, halving, to 25/s). Each run also records the Redis commands (INFO commandstats deltas) and MySQL
# SELECTs (Com_select deltas) it caused, and the context switches of the system's threads
# (/proc); the tables give them per call (per full registration).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/bench-register.XXXXXX)}
BENCH_REDIS_PORT=${BENCH_REDIS_PORT:-17990} BENCH_MYSQL_PORT=${BENCH_MYSQL_PORT:-17991}
STEP=${STEP:-10s} PROCS=${PROCS:-4} USERS=${USERS:-10000} MEM_USERS=${MEM_USERS:-100000}
MEM_RATE=${MEM_RATE:-1000} RATES=${RATES:-1000,2000,4000,8000} REPEATS=${REPEATS:-2} ONLY=${ONLY:-}
BASELINE=${BASELINE:-} DRACHTIO_LOGLEVEL=${DRACHTIO_LOGLEVEL:-info} ORIGINAL_DIR=${ORIGINAL_DIR:-}
SECRET=bench-encryption-secret-0123456789abcdef
PATH=$PATH:/usr/sbin:/sbin:/usr/local/go/bin
mkdir -p "$OUT"
log() { echo "bench: $*" >&2; }

# 1. Packages.
missing=()
command -v sipp >/dev/null || missing+=(sip-tester)
command -v kamailio >/dev/null || missing+=(kamailio)
[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/db_mysql.so ] || [ -e /usr/lib/kamailio/modules/db_mysql.so ] || missing+=(kamailio-mysql-modules)
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	sudo=()
	[ "$(id -u)" = 0 ] || sudo=(sudo)
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=900 update >&2
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=900 install --no-install-recommends "${missing[@]}" >&2
fi
if [ -n "$ORIGINAL_DIR" ]; then
	[ -f "$ORIGINAL_DIR/app.js" ] && [ -d "$ORIGINAL_DIR/node_modules" ] ||
		{ log "ORIGINAL_DIR=$ORIGINAL_DIR is not a checkout of jambonz/sbc-sip-sidecar with node_modules installed"; exit 1; }
	command -v node >/dev/null || { log "ORIGINAL_DIR is set but node is not on PATH"; exit 1; }
fi
kam_sql=/usr/share/kamailio/mysql
[ -e "$kam_sql/standard-create.sql" ] || { log "no $kam_sql/standard-create.sql (kamailio-mysql-modules)"; exit 1; }

# 2. Services (scripts/test.sh installs redis/mariadb/sipp when missing).
export TEST_STATE_DIR=$OUT/services TEST_REDIS_PORT=$BENCH_REDIS_PORT TEST_MYSQL_PORT=$BENCH_MYSQL_PORT
services_env=$("$repo/scripts/test.sh" --services-only) || { log "services did not start"; exit 1; }
eval "$services_env"
if [ "${KEEP:-0}" != 1 ]; then
	trap '"$repo/scripts/test.sh" --stop >/dev/null 2>&1 || true' EXIT
fi
mysql_root() { mysql --no-defaults -h 127.0.0.1 -P "$BENCH_MYSQL_PORT" -uroot -pjambones_root "$@"; }

(cd "$repo" && go build -o "$OUT/register" ./bench/register && go build -o "$OUT/sbc-sip-sidecar" ./cmd/sbc-sip-sidecar)
baseline_args=()
if [ -n "$BASELINE" ]; then
	rm -rf "$OUT/baseline-src" && mkdir -p "$OUT/baseline-src"
	git -C "$repo" archive "$BASELINE" | tar -x -C "$OUT/baseline-src"
	(cd "$OUT/baseline-src" && ${BASELINE_GO:-go} build -o "$OUT/sbc-sip-sidecar-baseline" ./cmd/sbc-sip-sidecar)
	baseline_args=(-baseline-service "$OUT/sbc-sip-sidecar-baseline" -baseline-env "${BASELINE_ENV:-}")
fi
gcc -O2 -shared -fPIC -o "$OUT/clockshim.so" "$here/clockshim/clockshim.c" -ldl

log "generating $USERS users (and $MEM_USERS for the memory run)"
"$OUT/register" gen -out "$OUT" -users "$USERS" -kamailio-users "$MEM_USERS" -secret "$SECRET" -hook-url "http://127.0.0.1:17050/auth"
mysql_root "$TEST_MYSQL_DATABASE" <"$OUT/jambones.sql"
mysql_root -e "DROP DATABASE IF EXISTS kamailio; CREATE DATABASE kamailio;"
mysql_root kamailio <"$kam_sql/standard-create.sql"
mysql_root kamailio <"$kam_sql/auth_db-create.sql"
mysql_root kamailio <"$kam_sql/usrloc-create.sql"
mysql_root kamailio <"$OUT/kamailio.sql"

# 3. Run.
cmdline="bench/run.sh  (STEP=$STEP PROCS=$PROCS USERS=$USERS MEM_USERS=$MEM_USERS MEM_RATE=$MEM_RATE RATES=$RATES REPEATS=$REPEATS${ONLY:+ ONLY=$ONLY}${BASELINE:+ BASELINE=$BASELINE}${BASELINE_ENV:+ BASELINE_ENV=$BASELINE_ENV}${BASELINE_GO:+ BASELINE_GO=$BASELINE_GO}${SYSCALLS:+ SYSCALLS=$SYSCALLS})"
log "running; outputs in $OUT (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
cd "$repo"
"$OUT/register" run -out "$OUT" -scenarios "$here/scenarios" -clockshim "$OUT/clockshim.so" \
	-service "$OUT/sbc-sip-sidecar" -kamailio-cfg "$here/kamailio/kamailio.cfg" \
	-mysql-host "$TEST_MYSQL_HOST" -mysql-port "$TEST_MYSQL_PORT" -mysql-user "$TEST_MYSQL_USER" \
	-mysql-password "$TEST_MYSQL_PASSWORD" -mysql-database "$TEST_MYSQL_DATABASE" -mysql-root-password jambones_root \
	-redis-host "${TEST_REDIS_ADDR%:*}" -redis-port "${TEST_REDIS_ADDR#*:}" -state-dir "$TEST_STATE_DIR" \
	-secret "$SECRET" -step "$STEP" -procs "$PROCS" -users "$USERS" -mem-users "$MEM_USERS" -mem-rate "$MEM_RATE" \
	-rates "$RATES" -repeats "$REPEATS" -only "$ONLY" -commands "$cmdline" "${baseline_args[@]}" \
	-drachtio "${TEST_DRACHTIO_BIN:-}" -drachtio-loglevel "$DRACHTIO_LOGLEVEL" -original "$ORIGINAL_DIR" \
	-count-syscalls="${SYSCALLS:-0}" -perf-record="${PERF_RECORD:-0}"

# 4. Results into the repository: the generated part of RESULTS.md between the markers.
cp "$OUT/results.json" "$here/results.json"
if [ -z "$ONLY" ] || [ "${RECORD:-0}" = 1 ]; then
	awk -v gen="$OUT/RESULTS.md" '
		/<!-- BEGIN GENERATED -->/ { print; while ((getline l < gen) > 0) print l; skip = 1; next }
		/<!-- END GENERATED -->/ { skip = 0 }
		!skip { print }' "$here/RESULTS.md" >"$OUT/RESULTS.full.md"
	cp "$OUT/RESULTS.full.md" "$here/RESULTS.md"
fi
log "done: $here/RESULTS.md, $here/results.json (raw sipp data in $OUT/runs)"
