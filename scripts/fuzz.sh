#!/usr/bin/env bash
# Fuzzes hookbox's parsers with cargo-fuzz (libFuzzer; needs nightly Rust): builds the targets in
# fuzz/, runs each one for the given number of seconds (default 600), one at a time and at the
# lowest CPU priority, then minimizes each corpus (cargo fuzz cmin, by edge coverage). A crash
# stops that target only: its reproducer is left in fuzz/artifacts/<target>/ and the script
# exits 1 at the end. See docs/fuzzing.md.
#
# Usage: scripts/fuzz.sh [seconds-per-target] [target...]   (default: every target)
# Logs: fuzz/logs/<target>.log (libFuzzer's output; the last lines hold the run's figures).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs=${1:-600}
shift || true

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "scripts/fuzz.sh: cargo-fuzz needs nightly Rust (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

echo "==> cargo +nightly fuzz build"
nice -n 19 cargo +nightly fuzz build

mkdir -p logs target/dicts
crashed=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  # libFuzzer takes one dictionary: the JSON tokens and the target's own.
  cat dicts/json.dict "dicts/$t.dict" >"target/dicts/$t.dict"
  echo "==> $t: ${secs}s"
  # New inputs go to corpus/<target> (the first folder); seeds/<target> is read only.
  if ! nice -n 19 cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -dict="target/dicts/$t.dict" -print_final_stats=1 \
    >"logs/$t.log" 2>&1; then
    crashed+=("$t")
    echo "    crashed: see fuzz/logs/$t.log and fuzz/artifacts/$t/"
  fi
  grep -E '^#[0-9]+.*(DONE|cov:)' "logs/$t.log" | tail -1 || true
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "logs/$t.log" || true
done

for t in "${targets[@]}"; do
  echo "==> cargo fuzz cmin $t"
  # By edge coverage alone (-use_counters=0): hit-count variants would triple the corpus.
  nice -n 19 cargo +nightly fuzz cmin "$t" "corpus/$t" -- -use_counters=0 >>"logs/$t.log" 2>&1
  echo "    corpus/$t: $(find "corpus/$t" -type f | wc -l) files"
done

if [ ${#crashed[@]} -gt 0 ]; then
  echo "crashes in: ${crashed[*]}" >&2
  exit 1
fi
