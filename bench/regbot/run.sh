#!/usr/bin/env bash
# Runs the regbot benchmark against throwaway Redis/MariaDB started by
# scripts/test.sh. Extra arguments go to the benchmark (-agents, -batch, -sleep).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
if [ -z "${TEST_REDIS_ADDR:-}" ]; then
	eval "$("$repo/scripts/test.sh" --services-only)"
	trap '"$repo/scripts/test.sh" --stop' EXIT
fi
cd "$here"
go run . -scenario "$here/uas.xml" "$@"
