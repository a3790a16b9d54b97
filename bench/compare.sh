#!/usr/bin/env bash
# Runs workload W1 in PyTorch and in tapegrad side by side, alternating, and prints the
# median samples/s of each and their ratio per (threads, batch) configuration.
#   bench/compare.sh [ROUNDS]     (needs ~/.cache/torch-venv with torch and numpy)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
python="${TORCH_PYTHON:-$HOME/.cache/torch-venv/bin/python3}"
cargo build --release --example bench_mlp >/dev/null 2>&1
configs=("1 128 3 0" "2 128 3 0" "1 1 1 5000")
for config in "${configs[@]}"; do
  read -r threads batch epochs steps <<<"$config"
  args=(--threads "$threads" --batch "$batch" --epochs "$epochs" --max-steps "$steps")
  torch=() ours=() rss=()
  for _ in $(seq "$rounds"); do
    t=$("$python" ../shared/bench/torch_mlp.py "${args[@]}" | tail -1)
    o=$(./target/release/examples/bench_mlp "${args[@]}" | tail -1)
    torch+=("$(sed -E 's/.*"median_samples_per_s": ([0-9]+).*/\1/' <<<"$t")")
    ours+=("$(sed -E 's/.*"median_samples_per_s": ([0-9]+).*/\1/' <<<"$o")")
    rss+=("$(sed -E 's/.*"peak_rss_mib": ([0-9.]+).*/\1/' <<<"$o")")
  done
  median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
  mt=$(median "${torch[@]}"); mo=$(median "${ours[@]}"); mr=$(median "${rss[@]}")
  echo "threads $threads batch $batch: torch ${torch[*]} -> $mt | tapegrad ${ours[*]} -> $mo | ratio $(awk "BEGIN {printf \"%.2f\", $mo/$mt}") | tapegrad peak RSS $mr MiB"
done
