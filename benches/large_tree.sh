#!/usr/bin/env bash
# `check` of a repository-sized tree: 200,000 files, one Dify compose project among them, the
# rest where repositories keep them — a `.git/` (50,000 objects), a git-ignored `node_modules/`
# (100,000 files) and `build/` (20,000), and 29,998 source files in 3,000 folders — plus a chain
# of 3,000 nested folders. Time and peak memory of the release binary, with GNU time.
# Not a test: it prints the figures (targets: a few seconds, under 200 MiB).
# Needs /usr/bin/time (Debian package `time`; scripts/install-test-deps installs it).
# Usage: benches/large_tree.sh [RUNS]   (default 3; the last run's peak memory is printed)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x /usr/bin/time ]]; then
    echo "benches/large_tree.sh: /usr/bin/time is missing — install the Debian package 'time'" >&2
    exit 1
fi
runs=${1:-3}
cargo build --release --quiet
bin=$PWD/target/release/difyplan
shared=../shared/fixtures/dify
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
repo=$work/repo

python3 - "$repo" <<'PY'
import os, sys
repo = sys.argv[1]
def files(folder, n, per_dir, name, text):
    made = 0
    d = 0
    while made < n:
        path = os.path.join(repo, folder, f"d{d}")
        os.makedirs(path, exist_ok=True)
        for i in range(min(per_dir, n - made)):
            with open(os.path.join(path, name.format(i)), "w") as f:
                f.write(text)
            made += 1
        d += 1
    return made
total = 0
total += files(".git/objects", 50_000, 200, "{:038x}", "x")
total += files("node_modules", 100_000, 100, "index{}.js", "module.exports = 1;\n")
total += files("build", 20_000, 100, "out{}.yaml", "kind: Output\n")
total += files("src", 29_998, 10, "mod{}.py", "print(1)\n")
with open(os.path.join(repo, ".gitignore"), "w") as f:
    f.write("node_modules/\n/build/\n")
# 3,000 nested folders, made relative to the last one (the full path is longer than a path may be).
fd = os.open(repo, os.O_RDONLY)
for i in range(3000):
    os.mkdir("n", dir_fd=fd)
    nxt = os.open("n", os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = nxt
os.close(fd)
print(f"{total + 2} files (the compose project's two included)", file=sys.stderr)
PY
mkdir -p "$repo/deploy/dify"
cp "$shared/1.16.1/docker-compose.yaml" "$repo/deploy/dify/"
cp "$shared/1.16.1/env.example" "$repo/deploy/dify/.env"
# A cold walk reads the disk; warm the cache once so the runs compare the walk, not the disk.
"$bin" check "$repo" --format json >/dev/null || true

for ((i = 1; i <= runs; i++)); do
    /usr/bin/time -v "$bin" check "$repo" --format json >"$work/out.json" 2>"$work/time.txt" || true
    wall=$(grep -F 'Elapsed (wall clock)' "$work/time.txt" | awk '{print $NF}')
    cpu_user=$(grep -F 'User time' "$work/time.txt" | awk '{print $NF}')
    cpu_sys=$(grep -F 'System time' "$work/time.txt" | awk '{print $NF}')
    peak=$(grep -F 'Maximum resident' "$work/time.txt" | awk '{print $NF}')
    echo "run $i: wall ${wall}, user ${cpu_user} s, system ${cpu_sys} s, peak $((peak / 1024)) MiB"
done
deployments=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["deployments"]))' "$work/out.json")
echo "deployments found: $deployments (expected 1)"
