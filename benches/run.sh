#!/usr/bin/env bash
# difyplan's speed targets, measured on the release binary (not a test: timings vary by machine).
#   size --qps 500                        under 10 ms
#   check of a Dify fixture directory     under 50 ms
#   check of 2,000 generated manifests    under 1 s
# Usage: benches/run.sh [RUNS]   (default 50 runs per case; the mean and the worst are printed)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
cargo build --release --quiet
bin=target/release/difyplan
shared=../shared/fixtures/dify
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A Dify 1.16.1 compose project as operators have it: the compose file and its .env.
mkdir -p "$work/compose"
cp "$shared/1.16.1/docker-compose.yaml" "$work/compose/"
cp "$shared/1.16.1/env.example" "$work/compose/.env"

# 2,000 manifests: 500 Dify deployments' worth of api/worker/beat/plugin Deployments, one file.
manifests="$work/manifests"
mkdir -p "$manifests"
python3 - "$manifests/all.yaml" <<'PY'
import sys
docs = []
for i in range(500):
    for name, mode, pool in (("api", "api", 30), ("worker", "worker", 30), ("worker-beat", "beat", 1), ("plugin-daemon", None, 0)):
        image = "langgenius/dify-plugin-daemon:0.6.10-local" if mode is None else "langgenius/dify-api:1.16.1"
        env = f"""
            - name: MODE
              value: "{mode}"
            - name: SQLALCHEMY_POOL_SIZE
              value: "{pool}\"""" if mode else """
            - name: DB_MAX_OPEN_CONNS
              value: "10\""""
        docs.append(f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}-{i}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: {name}-{i}}}
  template:
    metadata:
      labels: {{app: {name}-{i}}}
    spec:
      containers:
        - name: main
          image: {image}
          env:{env}
""")
open(sys.argv[1], "w").write("---\n".join(docs))
PY

# Time one command RUNS times; print mean and max in ms.
measure() {
    local label=$1 limit_ms=$2; shift 2
    local total=0 max=0 t0 t1 ms
    for _ in $(seq "$runs"); do
        t0=$(date +%s%N)
        local code=0
        "$@" >/dev/null 2>&1 || code=$?
        if (( code > 1 )); then echo "$label: exit $code" >&2; "$@" >/dev/null; exit 1; fi
        t1=$(date +%s%N)
        ms=$(( (t1 - t0) / 1000 ))
        total=$(( total + ms ))
        if (( ms > max )); then max=$ms; fi
    done
    local mean=$(( total / runs ))
    local verdict=ok
    if (( mean > limit_ms * 1000 )); then verdict=SLOW; fi
    printf '%-44s mean %6d.%03d ms  max %6d.%03d ms  target < %d ms  %s\n' "$label" $((mean/1000)) $((mean%1000)) $((max/1000)) $((max%1000)) "$limit_ms" "$verdict"
}

measure "size --qps 500" 10 "$bin" size --qps 500
measure "check Dify 1.16.1 compose project" 50 "$bin" check "$work/compose" --format json
measure "check 2,000 generated manifests" 1000 "$bin" check "$manifests" --format json --pg-max-connections 100000
