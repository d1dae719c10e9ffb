#!/usr/bin/env bash
# Runs every test of this repository against throwaway Redis and MariaDB servers.
#
#   scripts/test.sh [go test args...]   install what is missing, start the services, load the
#                                       jambonz schema, run go vet, a gofmt check, go test
#                                       (-p 1 -count=1 ./... plus the args) and staticcheck,
#                                       then stop the services. Exits non-zero on any failure.
#                                       If the first arg is a package (./internal/x/...), the
#                                       args replace ./... : scripts/test.sh ./internal/store/ -run X -v
#                                       A full run (no package arg) then runs the unit tests of the
#                                       packages with concurrency again under -race (race_pkgs below;
#                                       not the end-to-end suite, whose processes are not built with
#                                       -race).
#   scripts/test.sh --services-only     start the services, print `export ...` lines on stdout
#                                       and leave them running:
#                                         eval "$(scripts/test.sh --services-only)"
#                                         go test ./internal/...
#   scripts/test.sh --stop              stop what --services-only started.
#
# Environment:
#   TEST_REDIS_PORT (16379), TEST_MYSQL_PORT (13306)   ports on 127.0.0.1
#   JAMBONZ_DB_DIR   SQL fixtures: create-db.sql, schema.sql, test-data.sql
#                    (default: <repo>/testdata/jambonz-db)
#   TEST_DRACHTIO_BIN  a drachtio-server binary for the drachtio front's tests (default:
#                    <repo>/../shared/tools/drachtio/drachtio when it exists; its runtime
#                    libraries are installed when missing). Without one those tests skip,
#                    or fail when CI=true.
#   STATICCHECK=0    skip staticcheck
#   RACE=0           skip the -race run
#   TEST_STATE_DIR   where --services-only keeps its servers (default: $TMPDIR/sbc-sip-sidecar-testenv.<uid>)
#
# Exported to the tests (see internal/testenv): TEST_REDIS_ADDR, TEST_MYSQL_HOST, TEST_MYSQL_PORT,
# TEST_MYSQL_USER, TEST_MYSQL_PASSWORD, TEST_MYSQL_DATABASE, TEST_JAMBONZ_DB_DIR,
# TEST_MYSQL_ROOT_DSN, a go-sql-driver/mysql DSN for MariaDB's root over TCP with a password
# (root@127.0.0.1 is given the password below; root@localhost stays socket-only, no password),
# and TEST_DRACHTIO_BIN when a drachtio-server binary was found.
#
# All progress goes to stderr so that stdout of --services-only can be eval'ed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
redis_port=${TEST_REDIS_PORT:-16379}
mysql_port=${TEST_MYSQL_PORT:-13306}
mysql_root_password=jambones_root
state_dir=${TEST_STATE_DIR:-${TMPDIR:-/tmp}/sbc-sip-sidecar-testenv.$(id -u)}

log() { echo "test.sh: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# Debian puts mariadbd in /usr/sbin, which a non-root PATH often lacks; Go may live in /usr/local/go.
PATH=$PATH:/usr/sbin:/sbin:/usr/local/go/bin:${HOME:-/root}/go/bin

first_cmd() { # first of the named commands that exists
	local c
	for c in "$@"; do
		if command -v "$c" >/dev/null 2>&1; then
			command -v "$c"
			return 0
		fi
	done
	return 1
}

# ---------- packages ----------

ensure_packages() {
	local missing=()
	first_cmd redis-server >/dev/null && first_cmd redis-cli >/dev/null || missing+=(redis-server redis-tools)
	first_cmd redis-sentinel >/dev/null || missing+=(redis-sentinel) # Sentinel failover test
	first_cmd mariadbd mysqld >/dev/null && first_cmd mariadb-install-db mysql_install_db >/dev/null || missing+=(mariadb-server)
	first_cmd mariadb mysql >/dev/null || missing+=(mariadb-client)
	first_cmd sipp >/dev/null || missing+=(sip-tester)
	# Real clients, registrar and attacker tools of test/interop (docs/interop.md).
	first_cmd node >/dev/null || missing+=(nodejs)
	first_cmd npm >/dev/null || missing+=(npm)
	first_cmd baresip >/dev/null || missing+=(baresip-core)
	first_cmd sipsak >/dev/null || missing+=(sipsak)
	first_cmd linphonec >/dev/null || missing+=(linphone-cli)
	first_cmd svwar >/dev/null || missing+=(sipvicious)
	first_cmd kamailio >/dev/null && first_cmd kamcmd >/dev/null || missing+=(kamailio)
	first_cmd unshare >/dev/null || missing+=(util-linux)
	[ ${#missing[@]} -eq 0 ] && return 0
	install_packages "${missing[@]}"
}

install_packages() { # debian packages...
	local missing=("$@") sudo=()
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null 2>&1 || die "missing packages (${missing[*]}); not root and no sudo: install them first"
		sudo=(sudo)
	fi
	log "installing ${missing[*]}"
	# Another apt run may hold the dpkg lock (e.g. machine provisioning): wait for it instead of failing.
	local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=900)
	local try
	for try in 1 2 3; do
		"${apt[@]}" update >&2 && break
		[ "$try" = 3 ] && die "apt-get update failed"
		sleep 10
	done
	"${apt[@]}" install --no-install-recommends "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
}

# ---------- services ----------

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_alive PIDFILE REGEX: the process in PIDFILE runs and its command line matches REGEX
# (guards against a recycled pid).
pid_alive() {
	local pid
	[ -s "$1" ] || return 1
	pid=$(cat "$1")
	[ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -Eq "$2"
}

start_redis() { # dir
	local dir=$1/redis
	mkdir -p "$dir"
	# No config file: everything on the command line, no RDB/AOF persistence, daemonized.
	redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
		--dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >&2 ||
		die "redis-server failed to start (see $dir/redis.log)"
	for _ in $(seq 1 100); do
		[ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ] && pid_alive "$dir/redis.pid" redis-server && return 0
		sleep 0.1
	done
	tail -20 "$dir/redis.log" >&2 || true
	die "redis-server did not answer on 127.0.0.1:$redis_port"
}

mysql_client() { # dir args...: root over the private socket
	local dir=$1
	shift
	"$(first_cmd mariadb mysql)" --no-defaults -uroot --socket="$dir/mysql/mysql.sock" "$@"
}

start_mariadb() { # dir
	local dir=$1/mysql user_opt=()
	mkdir -p "$dir/tmp"
	# mariadbd refuses to run as root unless told to.
	[ "$(id -u)" = 0 ] && user_opt=(--user=root)
	# --no-defaults: ignore /etc/mysql so a system server's socket, port or datadir never leak in.
	# 'normal' root authentication: root@localhost (socket) and root@127.0.0.1 without password.
	"$(first_cmd mariadb-install-db mysql_install_db)" --no-defaults --datadir="$dir/data" "${user_opt[@]}" \
		--auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
		>"$dir/install.log" 2>&1 || {
		tail -30 "$dir/install.log" >&2
		die "mariadb-install-db failed"
	}
	# Speed over durability; native AIO off because some container filesystems reject it.
	local cmd=("$(first_cmd mariadbd mysqld)" --no-defaults --datadir="$dir/data" "${user_opt[@]}"
		--bind-address=127.0.0.1 --port="$mysql_port" --socket="$dir/mysql.sock"
		--pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" --tmpdir="$dir/tmp"
		--skip-name-resolve --skip-log-bin --performance-schema=OFF
		--innodb-buffer-pool-size=64M --innodb-log-file-size=16M --innodb-flush-log-at-trx-commit=0
		--innodb-doublewrite=0 --innodb-use-native-aio=0)
	# Own session so it outlives --services-only; stdio closed so $(...) around us never hangs.
	if command -v setsid >/dev/null 2>&1; then
		setsid "${cmd[@]}" </dev/null >>"$dir/error.log" 2>&1 &
	else
		"${cmd[@]}" </dev/null >>"$dir/error.log" 2>&1 &
	fi
	local launcher=$!
	for _ in $(seq 1 600); do
		if mysql_client "$1" -e 'select 1' >/dev/null 2>&1; then
			pid_alive "$dir/mysqld.pid" "mariadbd|mysqld" && return 0
		fi
		if ! kill -0 "$launcher" 2>/dev/null && ! pid_alive "$dir/mysqld.pid" "mariadbd|mysqld"; then
			break
		fi
		sleep 0.1
	done
	tail -30 "$dir/error.log" >&2 || true
	die "mariadbd did not answer on 127.0.0.1:$mysql_port"
}

load_fixtures() { # dir
	local dir=$1 f
	# Root over TCP needs a password so TEST_MYSQL_ROOT_DSN is an ordinary DSN.
	mysql_client "$dir" -e "CREATE OR REPLACE USER 'root'@'127.0.0.1' IDENTIFIED BY '$mysql_root_password';
		GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;" ||
		die "could not set the root password"
	mysql_client "$dir" <"$db_dir/create-db.sql" || die "loading create-db.sql failed"
	for f in schema.sql test-data.sql; do
		mysql_client "$dir" jambones_test <"$db_dir/$f" || die "loading $f failed"
	done
}

# stop_services DIR: stop both servers recorded in DIR and remove DIR.
stop_services() {
	local dir=$1 f pids=()
	[ -d "$dir" ] || return 0
	for f in "$dir/redis/redis.pid:redis-server" "$dir/mysql/mysqld.pid:mariadbd|mysqld"; do
		if pid_alive "${f%%:*}" "${f#*:}"; then
			pids+=("$(cat "${f%%:*}")")
		fi
	done
	if [ ${#pids[@]} -gt 0 ]; then
		kill -TERM "${pids[@]}" 2>/dev/null || true
		for _ in $(seq 1 300); do # they are not our children: poll instead of wait
			local alive=0 p
			for p in "${pids[@]}"; do if kill -0 "$p" 2>/dev/null; then alive=1; fi; done
			[ $alive = 0 ] && break
			sleep 0.1
		done
		kill -KILL "${pids[@]}" 2>/dev/null || true
	fi
	rm -rf "$dir"
}

start_services() { # dir
	local dir=$1
	port_in_use "$redis_port" && die "127.0.0.1:$redis_port is in use (stale run? try scripts/test.sh --stop, or set TEST_REDIS_PORT)"
	port_in_use "$mysql_port" && die "127.0.0.1:$mysql_port is in use (stale run? try scripts/test.sh --stop, or set TEST_MYSQL_PORT)"
	log "starting redis on 127.0.0.1:$redis_port and mariadb on 127.0.0.1:$mysql_port (in $dir)"
	start_redis "$dir"
	start_mariadb "$dir"
	load_fixtures "$dir"
}

env_lines() {
	cat <<EOF
export TEST_REDIS_ADDR=127.0.0.1:$redis_port
export TEST_MYSQL_HOST=127.0.0.1
export TEST_MYSQL_PORT=$mysql_port
export TEST_MYSQL_USER=jambones_test
export TEST_MYSQL_PASSWORD=jambones_test
export TEST_MYSQL_DATABASE=jambones_test
export TEST_MYSQL_ROOT_DSN='root:$mysql_root_password@tcp(127.0.0.1:$mysql_port)/'
EOF
	printf 'export TEST_JAMBONZ_DB_DIR=%q\n' "$db_dir"
	[ -z "$drachtio_bin" ] || printf 'export TEST_DRACHTIO_BIN=%q\n' "$drachtio_bin"
}

resolve_db_dir() {
	db_dir=${JAMBONZ_DB_DIR:-$repo/testdata/jambonz-db}
	[ -f "$db_dir/schema.sql" ] || die "no jambonz SQL fixtures in $db_dir (set JAMBONZ_DB_DIR)"
	db_dir=$(cd "$db_dir" && pwd)
}

# resolve_drachtio sets drachtio_bin to a runnable drachtio-server, or "" when there is none
# (the drachtio-server tests then skip, or fail under CI, saying why). The binary is not part of
# the repository: a workspace may hold one beside it (see its README for the libraries).
resolve_drachtio() {
	drachtio_bin=${TEST_DRACHTIO_BIN:-}
	if [ -z "$drachtio_bin" ] && [ -x "$repo/../shared/tools/drachtio/drachtio" ]; then
		drachtio_bin=$(cd "$repo/../shared/tools/drachtio" && pwd)/drachtio
	fi
	[ -n "$drachtio_bin" ] || {
		log "no drachtio-server binary (set TEST_DRACHTIO_BIN): its tests will skip"
		return 0
	}
	[ -x "$drachtio_bin" ] || die "TEST_DRACHTIO_BIN=$drachtio_bin is not an executable"
	if ldd "$drachtio_bin" 2>/dev/null | grep -q 'not found'; then
		install_packages libboost-log1.74.0 libboost-thread1.74.0 libboost-filesystem1.74.0 libcurl4
		if ldd "$drachtio_bin" | grep 'not found' >&2; then
			die "$drachtio_bin misses libraries even after installing its runtime packages"
		fi
	fi
}

# ---------- modes ----------

services_only() {
	resolve_db_dir
	if pid_alive "$state_dir/redis/redis.pid" redis-server && pid_alive "$state_dir/mysql/mysqld.pid" "mariadbd|mysqld" && [ -f "$state_dir/env" ]; then
		log "services already running (state in $state_dir)"
		cat "$state_dir/env"
		return 0
	fi
	stop_services "$state_dir" # leftovers of a half-dead earlier run
	ensure_packages
	resolve_drachtio
	mkdir -p "$state_dir"
	chmod 700 "$state_dir"
	# Clean up only if start-up fails half way; on success the services stay.
	trap 'stop_services "$state_dir"' EXIT
	start_services "$state_dir"
	trap - EXIT
	{
		env_lines
		echo "# stop with: $repo/scripts/test.sh --stop"
	} >"$state_dir/env"
	cat "$state_dir/env"
	log "services running; stop them with scripts/test.sh --stop"
}

run_tests() {
	resolve_db_dir
	command -v go >/dev/null 2>&1 || die "go is not installed"
	ensure_packages
	resolve_drachtio
	work=$(mktemp -d "${TMPDIR:-/tmp}/sbc-sip-sidecar-test.XXXXXX")
	trap 'stop_services "$work"' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	start_services "$work"
	eval "$(env_lines)"

	cd "$repo"
	local failed=() test_status=0
	# JsSIP and SIP.js for test/interop, at the versions of its package-lock.json; the cache under
	# .tmp/ (git-ignored) lets a later run without network install them again.
	log "npm ci (test/interop/node)"
	(cd test/interop/node && npm ci --cache "$repo/.tmp/npm-cache" --prefer-offline --no-audit --no-fund --loglevel=error >&2) ||
		failed+=("npm ci")
	log "go vet ./..."
	go vet ./... || failed+=("go vet")

	log "gofmt -l"
	local unformatted
	unformatted=$(find . -name '*.go' -not -path './.*' -not -path './vendor/*' -not -path '*/testdata/*' -print0 | xargs -0 -r gofmt -l)
	if [ -n "$unformatted" ]; then
		log "not gofmt'ed:"
		echo "$unformatted" >&2
		failed+=(gofmt)
	fi

	local pkgs=(./...)
	if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then pkgs=(); fi # first arg is a package: use the args as given
	log "go test -p 1 -count=1 ${pkgs[*]} $*"
	go test -p 1 -count=1 "${pkgs[@]}" "$@" || {
		test_status=$?
		failed+=("go test")
	}

	# The race detector over the packages with goroutines and shared state.
	# The e2e suite stays out: it drives separately built binaries, and its
	# run time would double for nothing the unit tests do not already cover.
	if [ "${RACE:-1}" != 0 ] && [ "${pkgs[*]}" = "./..." ]; then
		local race_pkgs=(./internal/sipfront/... ./internal/registrar/... ./internal/regbot/...
			./internal/membership/... ./internal/store/... ./internal/nonce/... ./internal/guard/...
			./internal/auth/... ./internal/logging/... ./internal/pinger/... ./internal/directory/...
			./internal/options/... ./internal/cli/... ./internal/drachtio/... ./internal/app/...
			./internal/health/... ./internal/metrics/... ./internal/alerts/... ./internal/sbcaddr/... ./internal/events/...)
		log "go test -race -p 1 -count=1 ${race_pkgs[*]} $*"
		go test -race -p 1 -count=1 "${race_pkgs[@]}" "$@" || failed+=("go test -race")
	fi

	if [ "${STATICCHECK:-1}" != 0 ]; then
		log "staticcheck ./..."
		# Built apart from the run so that a failed download is told apart from findings.
		if GOBIN="$work/bin" go install honnef.co/go/tools/cmd/staticcheck@v0.8.2; then
			"$work/bin/staticcheck" ./... || failed+=(staticcheck)
		else
			failed+=("staticcheck (install)")
		fi
	fi

	if [ ${#failed[@]} -gt 0 ]; then
		log "FAILED: ${failed[*]}"
		[ $test_status -ne 0 ] && exit $test_status
		exit 1
	fi
	log "all checks passed"
}

case "${1:-}" in
--services-only) services_only ;;
--stop)
	if [ -d "$state_dir" ]; then
		stop_services "$state_dir"
		log "stopped (removed $state_dir)"
	else
		log "nothing to stop ($state_dir does not exist)"
	fi
	;;
-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
*) run_tests "$@" ;;
esac
