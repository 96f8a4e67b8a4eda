#!/usr/bin/env bash
# Peak memory of difyplan on hostile 16 MiB inputs (the largest file it reads), measured with
# GNU time on the release binary. Not a test: it prints the figures and marks any case at or
# above the target of 200 MiB. Whatever the verdict on an input (a plan, or exit 2 because the
# input is absurd), the process must stay under the target.
# Needs /usr/bin/time (Debian package `time`; scripts/install-test-deps installs it).
# Usage: benches/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x /usr/bin/time ]]; then
    echo "benches/memory.sh: /usr/bin/time is missing — install the Debian package 'time'" >&2
    exit 1
fi
cargo build --release --quiet
bin=$PWD/target/release/difyplan
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
limit_kib=$((200 * 1024))

# Each generator writes just under 16 MiB.
python3 - "$work" <<'PY'
import sys, os
work = sys.argv[1]
LIMIT = 16 * 1024 * 1024 - 4096

def fill(name, head, unit, tail=""):
    with open(os.path.join(work, name), "w") as f:
        size = len(head) + len(tail)
        f.write(head)
        i = 0
        while True:
            chunk = unit(i)
            if size + len(chunk) > LIMIT:
                break
            f.write(chunk)
            size += len(chunk)
            i += 1
        f.write(tail)

# .env: many short assignments; and few, long values.
fill("many.env", "DB_USERNAME=dify\n", lambda i: f"K{i}=v{i}\n")
fill("long.env", "DB_USERNAME=dify\n", lambda i: f"K{i}={'x' * 60000}\n")
fill("interp.env", "A=abc\n", lambda i: f"K{i}=${{A}}${{A:-x}}${{B:-${{A}}}}\n")
# one long value copied by reference on every line
fill("expand.env", "A=" + "z" * 1000000 + "\n", lambda i: f"K{i}=${{A}}\n")
# compose: many small services (over the node limit), few services with long values.
os.makedirs(os.path.join(work, "compose-many"))
fill("compose-many/docker-compose.yaml", "services:\n",
     lambda i: f"  s{i}:\n    image: langgenius/dify-api:1.16.1\n    environment:\n      SQLALCHEMY_POOL_SIZE: 3\n")
os.makedirs(os.path.join(work, "compose-long"))
pad = "x" * 4000
fill("compose-long/docker-compose.yaml", "services:\n",
     lambda i: f"  s{i}:\n    image: langgenius/dify-api:1.16.1\n    environment:\n      SQLALCHEMY_POOL_SIZE: '3'\n      X: '{pad}'\n" if i < 900 else f"x-pad{i}: '{pad}'\n")
os.makedirs(os.path.join(work, "compose-wide"))
pad = "w" * 800
fill("compose-wide/docker-compose.yaml", "services:\n",
     lambda i: f"  svc{i}:\n    image: nginx-{pad}\n    environment:\n      A: b\n      C: d\n")
# Kubernetes: Deployments one after another.
fill("manifests.yaml", "", lambda i: f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api-{i}}}
spec:
  replicas: 1
  template:
    spec:
      containers:
        - name: main
          image: langgenius/dify-api:1.16.1
          env:
            - {{name: MODE, value: api}}
            - {{name: PAD, value: "{'y' * 200}"}}
""")
# Helm values: one huge list under a component.
fill("values.yaml", "api:\n  replicas: 1\nworker:\n  replicas: 1\n  extraEnv:\n",
     lambda i: f"    - {{name: K{i}, value: v{i}}}\n")
PY

measure() {
    local label=$1; shift
    local log=$work/time.log code=0
    /usr/bin/time -f '%M %e' -o "$log" "$@" >/dev/null 2>"$work/stderr" || code=$?
    read -r kib secs < <(tail -n 1 "$log")
    local verdict=ok
    if (( kib >= limit_kib )); then verdict=OVER; fi
    printf '%-36s peak %6d MiB  %6.2f s  exit %d  target < 200 MiB  %s\n' "$label" $((kib / 1024)) "$secs" "$code" "$verdict"
}

for f in many.env long.env interp.env expand.env; do
    measure "check $f ($(( $(stat -c %s "$work/$f") / 1048576 )) MiB)" "$bin" check "$work/$f" --format json
done
measure "render env --patch many.env" "$bin" render env --qps 10 --patch "$work/many.env"
measure "check compose, many services" "$bin" check "$work/compose-many" --format json
measure "check compose, long values" "$bin" check "$work/compose-long" --format json --pg-max-connections 100000
measure "check compose, wide services" "$bin" check "$work/compose-wide" --format json
measure "check Kubernetes manifests" "$bin" check "$work/manifests.yaml" --format json --pg-max-connections 100000
measure "check Helm values" "$bin" check "$work/values.yaml" --format json
