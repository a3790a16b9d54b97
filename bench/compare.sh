#!/usr/bin/env bash
# Runs workloads W1 (MLP) and W2 (CNN, training and batch-1 inference) in PyTorch and in
# tapegrad side by side, alternating, and prints the median samples/s of each and their ratio
# per (threads, batch) configuration.
#   bench/compare.sh [ROUNDS] [WORKLOADS]   (WORKLOADS: "W1 W2" by default; needs
#                                            ~/.cache/torch-venv with torch and numpy)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
workloads="${2:-W1 W2}"
python="${TORCH_PYTHON:-$HOME/.cache/torch-venv/bin/python3}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --example bench_mlp --example bench_cnn >/dev/null 2>&1
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
field() { sed -E "s/.*\"$1\": ([0-9.]+).*/\1/"; }
if [[ " $workloads " == *" W1 "* ]]; then
configs=("1 128 3 0" "2 128 3 0" "1 1 1 5000")
for config in "${configs[@]}"; do
  read -r threads batch epochs steps <<<"$config"
  args=(--threads "$threads" --batch "$batch" --epochs "$epochs" --max-steps "$steps")
  torch=() ours=() rss=()
  for _ in $(seq "$rounds"); do
    t=$("$python" bench/torch_mlp.py "${args[@]}" | tail -1)
    o=$("$target"/release/examples/bench_mlp "${args[@]}" | tail -1)
    torch+=("$(sed -E 's/.*"median_samples_per_s": ([0-9]+).*/\1/' <<<"$t")")
    ours+=("$(sed -E 's/.*"median_samples_per_s": ([0-9]+).*/\1/' <<<"$o")")
    rss+=("$(sed -E 's/.*"peak_rss_mib": ([0-9.]+).*/\1/' <<<"$o")")
  done
  mt=$(median "${torch[@]}"); mo=$(median "${ours[@]}"); mr=$(median "${rss[@]}")
  echo "W1 threads $threads batch $batch: torch ${torch[*]} -> $mt | tapegrad ${ours[*]} -> $mo | ratio $(awk "BEGIN {printf \"%.2f\", $mo/$mt}") | tapegrad peak RSS $mr MiB"
done
fi
if [[ " $workloads " == *" W2 "* ]]; then
for config in "1 128 1 0" "2 128 1 0"; do
  read -r threads batch epochs steps <<<"$config"
  args=(--threads "$threads" --batch "$batch" --epochs "$epochs" --max-steps "$steps")
  torch=() ours=() rss=()
  for _ in $(seq "$rounds"); do
    t=$("$python" bench/torch_cnn.py "${args[@]}" | tail -1)
    o=$("$target"/release/examples/bench_cnn "${args[@]}" | tail -1)
    torch+=("$(field median_samples_per_s <<<"$t")")
    ours+=("$(field median_samples_per_s <<<"$o")")
    rss+=("$(field peak_rss_mib <<<"$o")")
  done
  mt=$(median "${torch[@]}"); mo=$(median "${ours[@]}"); mr=$(median "${rss[@]}")
  echo "W2 threads $threads batch $batch: torch ${torch[*]} -> $mt | tapegrad ${ours[*]} -> $mo | ratio $(awk "BEGIN {printf \"%.2f\", $mo/$mt}") | tapegrad peak RSS $mr MiB"
done
for threads in 1 2; do
  torch=() ours=()
  for _ in $(seq "$rounds"); do
    t=$("$python" bench/torch_cnn_infer.py --threads "$threads" --infer 2000 | tail -1)
    o=$("$target"/release/examples/bench_cnn --threads "$threads" --infer 2000 | tail -1)
    torch+=("$(field infer_batch1_per_s <<<"$t")")
    ours+=("$(field infer_batch1_per_s <<<"$o")")
  done
  mt=$(median "${torch[@]}"); mo=$(median "${ours[@]}")
  echo "W2 inference threads $threads batch 1: torch ${torch[*]} -> $mt | tapegrad ${ours[*]} -> $mo | ratio $(awk "BEGIN {printf \"%.2f\", $mo/$mt}")"
done
fi
