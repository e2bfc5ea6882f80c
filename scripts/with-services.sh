#!/usr/bin/env bash
# Runs a command with throwaway PostgreSQL, Redis and ClickHouse, their URLs
# in the environment (see scripts/services.sh), and stops them afterwards,
# whether the command passed or failed.
#
#   scripts/with-services.sh cargo test --workspace
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/pulse-services.XXXXXX")
trap '"$here/services.sh" stop "$dir"' EXIT
trap 'exit 130' INT TERM
"$here/services.sh" start "$dir"
set -a
# shellcheck disable=SC1091
. "$dir/env"
set +a
"$@"
