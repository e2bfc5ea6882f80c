#!/usr/bin/env bash
# Validates the compose files and Dockerfiles without a Docker engine:
# - Debian's docker-compose parses and checks each compose file;
# - every image is pinned (a tag other than `latest`, or a digest);
# - every published port is bound to 127.0.0.1;
# - no healthcheck says `localhost` (it may resolve to ::1 first, where the
#   service may not listen);
# - each Dockerfile copies every crate's manifest for its dependency layer.
#
#   scripts/compose-check.sh [COMPOSE_FILE...]   default: both compose files
set -euo pipefail
cd "$(dirname "$0")/.."
files=("$@")
[[ ${#files[@]} -gt 0 ]] || files=(docker-compose.yml docker-compose.infrastructure.yml)

if ! command -v docker-compose >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "compose-check: docker-compose missing; install it with: sudo apt-get install -y docker-compose" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi

# The static rules need PyYAML; Debian's docker-compose brings it for the
# system python3.
py=python3
"$py" -c 'import yaml' 2>/dev/null || py=/usr/bin/python3

failed=0
for f in "${files[@]}"; do
  docker-compose -f "$f" config -q
  if "$py" - "$f" <<'PY'
import re, sys, yaml

path = sys.argv[1]
doc = yaml.safe_load(open(path)) or {}
problems = []
for name, svc in (doc.get("services") or {}).items():
    image = svc.get("image")
    if image is not None:
        last = image.rsplit("/", 1)[-1]
        if "@" not in last and (":" not in last or last.endswith(":latest")):
            problems.append(f"{name}: image {image!r} is not pinned to a version")
    for port in svc.get("ports") or []:
        if isinstance(port, dict):
            ok = port.get("host_ip") == "127.0.0.1"
        else:
            ok = str(port).startswith("127.0.0.1:")
        if not ok:
            problems.append(f"{name}: published port {port!r} is not bound to 127.0.0.1")
    test = (svc.get("healthcheck") or {}).get("test")
    text = " ".join(test) if isinstance(test, list) else str(test or "")
    if re.search(r"\blocalhost\b", text):
        problems.append(f"{name}: healthcheck uses localhost; use 127.0.0.1")
for p in problems:
    print(f"compose-check: {path}: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
  then
    echo "compose-check: $f ok"
  else
    failed=1
  fi
done

# A crate whose manifest is missing from the dependency layer breaks the
# first `cargo build` there (the workspace lists crates/*).
for d in Dockerfile.server Dockerfile.worker; do
  for m in crates/*/Cargo.toml; do
    if ! grep -qE "^COPY $m( |$)" "$d"; then
      echo "compose-check: $d: does not copy $m into its dependency layer" >&2
      failed=1
    fi
  done
done
exit "$failed"
