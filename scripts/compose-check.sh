#!/usr/bin/env bash
# Validates docker-compose.yml and docker-compose.infrastructure.yml with
# Debian's docker-compose, which parses and checks them without an engine.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v docker-compose >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "compose-check: docker-compose missing; install it with: sudo apt-get install -y docker-compose" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi
for f in docker-compose.yml docker-compose.infrastructure.yml; do
  docker-compose -f "$f" config -q
  echo "compose-check: $f ok"
done
