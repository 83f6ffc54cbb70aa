#!/usr/bin/env bash
# Every figure of docs/performance.md's generated tables, from one run on this machine:
#
#   benches/one_run.sh [OUT]          # OUT defaults to target/one-run/<UTC date and time>
#
# Runs, one after the other, with nothing else of ours in between:
#   - every criterion bench of crates/eventfile-bench (append, query, subscribe, backends,
#     models), their estimates kept under OUT/criterion;
#   - the alternating CPU benches (read_cpu: read_all and the one-stream read against SQLite;
#     backends_alt: PostgreSQL's lone append against a plain INSERT, the backends' queries
#     against the same queries by hand), rounds interleaved so that load falls on both sides;
#   - the scale run (examples/scale.rs) at 1,000,000 events in 10,000 streams and at
#     10,000,000 in 100,000 (about 3.5 GB in a temporary directory);
#   - `eventfile generate --events 1000000`, three times, each into a fresh directory;
#   - the HTTP server's load test (crates/eventfile-server/examples/load.rs);
# then `examples/perf_report.rs` reads OUT and writes the tables between the markers of
# docs/performance.md (`--write`) and to OUT/tables.md.
#
# Each step's output goes to OUT/<step>.txt, with the load average before and after it in
# OUT/load.txt. The PostgreSQL benches start a private server as .ci/run does (or use
# EVENTFILE_TEST_POSTGRES_URL); without one they print why and skip their rows.
# About 20 minutes here (17 on a quiet machine, 2026-12-02). Stores live under TMPDIR: it must
# be on the disk being measured.
# ONE_RUN_SMALL=1 shrinks every data set (a check that the run and the report work, not a
# measurement).
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${1:-target/one-run/$(date -u +%Y%m%dT%H%M)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export CRITERION_HOME="$OUT/criterion"

# What the run measures: the commit and any uncommitted change outside docs/. Each `cargo
# bench` step rebuilds its bench if a source changed meanwhile, so a tree edited during the run
# would have its later steps measure other code than `run.txt` names; checked at the end.
tree_state() { echo "$(git rev-parse HEAD) $(git diff HEAD -- . ':!docs' | sha1sum)"; }
started_tree=$(tree_state)

{
    echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' || echo ' (with uncommitted changes)')"
    echo "started $(date -u '+%Y-%m-%d %H:%M') UTC"
    # The processor too: two runs on hosts of the same size differed twice over in CPU-bound
    # work (docs/performance-history.md, "the whole suite again, on another host").
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
    echo "machine $(nproc) cores${cpu:+ ($cpu)}, $(free -g | awk '/Mem:/ {print $2}') GiB"
} >"$OUT/run.txt"

echo "building the benches, examples and the CLI (release)" >&2
cargo bench -p eventfile-bench --no-run -q
cargo build --release -q --example scale --example perf_report
cargo build --release -q -p eventfile-cli
cargo build --release -q -p eventfile-server --example load
bin=${CARGO_TARGET_DIR:-target}/release

step() {
    local name=$1
    shift
    echo "== $name: $*" >&2
    echo "$name before: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/load.txt"
    local started=$SECONDS
    "$@" >"$OUT/$name.txt" 2>"$OUT/$name.err"
    echo "$name after: $(cut -d' ' -f1-3 /proc/loadavg) ($((SECONDS - started)) s)" >>"$OUT/load.txt"
}

events=(1000000 10000000) streams=(10000 100000) generated=1000000 rounds=15 alt_rounds=300
load_args=()
if [[ -n ${ONE_RUN_SMALL:-} ]]; then
    export EVENTFILE_BENCH_EVENTS=20000
    events=(20000 200000) streams=(200 2000) generated=10000 rounds=3 alt_rounds=5
    load_args=(--appends 1600 --subscribers 50 --burst 1000)
    echo "small: every data set shrunk, not a measurement" >>"$OUT/run.txt"
fi

for bench in append query subscribe backends models; do
    step "$bench" cargo bench -q -p eventfile-bench --bench "$bench"
done
step read_cpu cargo bench -q -p eventfile-bench --bench read_cpu "$rounds"
step backends_alt cargo bench -q -p eventfile-bench --bench backends_alt "$alt_rounds"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
step scale-1m "$bin/examples/scale" --events "${events[0]}" --streams "${streams[0]}" --dir "$scratch/scale-1m"
rm -rf "$scratch/scale-1m"
step scale-10m "$bin/examples/scale" --events "${events[1]}" --streams "${streams[1]}" --dir "$scratch/scale-10m"
rm -rf "$scratch/scale-10m"

for k in 1 2 3; do
    step "generate-$k" /usr/bin/time -f "%e s wall, %U s user, %S s sys, %M KB peak" -o "$OUT/generate-$k.time" \
        "$bin/eventfile" --dir "$scratch/generate-$k" generate --events "$generated" --seed 7
    rm -rf "$scratch/generate-$k"
done

step server-load "$bin/examples/load" "${load_args[@]}"

echo "finished $(date -u '+%Y-%m-%d %H:%M') UTC" >>"$OUT/run.txt"
if [ "$(tree_state)" != "$started_tree" ]; then
    echo "the commit or a source changed during the run: its steps measured different code;" \
        "docs/performance.md left as it was (the outputs are in $OUT)" >&2
    exit 1
fi
"$bin/examples/perf_report" --run "$OUT" --write docs/performance.md >"$OUT/tables.md"
echo "tables: $OUT/tables.md; docs/performance.md updated between its markers" >&2
