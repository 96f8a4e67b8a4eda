#!/usr/bin/env bash
# Plan efficiency (a benchmark, not a test): for each built-in profile on both targets at 10, 100,
# 500 and 2,000 QPS, the worst-case connections a plan budgets without a pooler and with
# `--pooler pgbouncer` side by side, their ratio, the server pool and the rule that set it, the
# connections in use on average, and the admission factor (load the api admits before requests queue).
# Targets (docs/model.md §10, docs/pooler.md): 500 QPS on compose, workflow worst case ≤ 3,900 and
# benchmark ≤ 600; 500 QPS on Kubernetes, pooled ≤ 0.8 × unpooled for chat, workflow and agent.
# Usage: benches/plan_efficiency.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/difyplan
printf '%-10s %-11s %6s %10s %10s %7s %8s %-11s %11s %9s\n' \
    profile target qps unpooled pooled ratio server sized_by mean_in_use api_admit
for profile in benchmark workflow chat agent; do
    for target in compose kubernetes; do
        for qps in 10 100 500 2000; do
            direct=$("$bin" size --qps "$qps" --profile "$profile" --target "$target" --format json || true)
            pooled=$("$bin" size --qps "$qps" --profile "$profile" --target "$target" --pooler pgbouncer --format json || true)
            python3 -c '
import json, sys
d, p = json.loads(sys.argv[4]), json.loads(sys.argv[5])
wd, wp = d["efficiency"]["worst_case_connections"], p["efficiency"]["worst_case_connections"]
po = p["pooler"]
print("%-10s %-11s %6s %10d %10d %7.2f %8d %-11s %11.1f %9.2f" % (sys.argv[1], sys.argv[2], sys.argv[3], wd, wp, wp / wd,
      po["server_connections"], po["sized_by"], d["efficiency"]["mean_connections_in_use"], d["overload"]["api"]["factor"]))
' "$profile" "$target" "$qps" "$direct" "$pooled"
        done
    done
done
