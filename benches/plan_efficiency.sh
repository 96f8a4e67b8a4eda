#!/usr/bin/env bash
# Plan efficiency (a benchmark, not a test): for each built-in profile on both targets at 10, 100,
# 500 and 2,000 QPS, the worst-case connections a plan budgets, the connections in use on average
# and their ratio, plus the admission factor (load the api admits before requests queue).
# Targets (docs/model.md §10): 500 QPS on compose, workflow worst case ≤ 3,900 and benchmark ≤ 300.
# Usage: benches/plan_efficiency.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/difyplan
printf '%-10s %-11s %6s %12s %12s %7s %9s %8s\n' profile target qps worst_case mean_in_use ratio api_admit exit
for profile in benchmark workflow chat agent; do
    for target in compose kubernetes; do
        for qps in 10 100 500 2000; do
            status=0
            json=$("$bin" size --qps "$qps" --profile "$profile" --target "$target" --format json) || status=$?
            printf '%s' "$json" | python3 -c '
import json, sys
p = json.load(sys.stdin)
e = p["efficiency"]
print("%-10s %-11s %6s %12d %12.1f %7.2f %9.2f %8s" % (sys.argv[1], sys.argv[2], sys.argv[3], e["worst_case_connections"], e["mean_connections_in_use"], e["ratio"], p["overload"]["api"]["factor"], sys.argv[4]))
' "$profile" "$target" "$qps" "$status"
        done
    done
done
