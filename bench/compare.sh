#!/usr/bin/env bash
# Runs workloads W1 (MLP) and W2 (CNN), training and inference (forward passes at batch 1 and
# 256), in PyTorch and in tapegrad side by side, alternating, and prints the median samples/s
# of each and their ratio per (threads, batch) configuration, and both as a percentage of the
# machine's f32 FMA peak:
# useful FLOP/s (samples/s × the model's FLOP per sample, which tapegrad's summary line
# reports, matrix work only, forward + backward for training) over the peak that tapegrad's
# probe measured for the run's thread count. Warns when the probe found in most rounds
# that the run's threads do not add FMA throughput (SMT siblings of one core) or when the
# machine was busy. Ends with a Markdown table for the README, the CPU model and the date.
#   bench/compare.sh [ROUNDS] [WORKLOADS] [KINDS]   (WORKLOADS: "W1 W2" by default; KINDS:
#                                            "training inference" by default; needs
#                                            ~/.cache/torch-venv with torch and numpy)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
workloads="${2:-W1 W2}"
kinds="${3:-training inference}"
python="${TORCH_PYTHON:-$HOME/.cache/torch-venv/bin/python3}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --example bench_mlp --example bench_cnn >/dev/null 2>&1
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# a number or boolean field of a JSON line (empty when absent or null)
field() { sed -nE "s/.*\"$1\": ([0-9.]+|true|false).*/\1/p"; }
calc() { awk "BEGIN {printf \"$1\", $2}"; }
plural() { if [[ $1 == 1 ]]; then echo "1 $2"; else echo "$1 ${2}s"; fi; }
rows=()
declare -A peaks=() flop_per_sample=()  # every run's peak by thread count; FLOP by workload

# compare LABEL METRIC "TORCH_SCRIPT [SCRIPT ARGS]" EXAMPLE ARGS...: runs both ROUNDS times with
# ARGS (PyTorch's script gets --infer-batch as its --batch), prints one line, warnings, and adds
# a table row.
compare() {
  local label=$1 metric=$2 script=() example=$4
  read -ra script <<<"$3"
  shift 4
  local threads flop torch=() ours=() rss=() peak=() one=() shared=0 waited=0 t o w
  local torch_args=("${@/#--infer-batch/--batch}")
  threads=$(sed -nE 's/.*--threads ([0-9]+).*/\1/p' <<<"$*")
  for _ in $(seq "$rounds"); do
    t=$("$python" "bench/${script[0]}" "${script[@]:1}" "${torch_args[@]}" | tail -1)
    o=$("$target/release/examples/$example" "$@" | tail -1)
    torch+=("$(field "$metric" <<<"$t")")
    ours+=("$(field "$metric" <<<"$o")")
    rss+=("$(field peak_rss_mib <<<"$o")")
    peak+=("$(field peak_gflops <<<"$o")")
    one+=("$(field peak_gflops_1thread <<<"$o")")
    flop=$(field flop_per_sample <<<"$o")
    if [[ $(field threads_add_throughput <<<"$o") == false ]]; then shared=$((shared + 1)); fi
    w=$(field peak_wait_share <<<"$o")
    if [[ -n $w ]]; then waited=$(calc "%.3f" "($w > $waited) ? $w : $waited"); fi
  done
  local mt mo mp m1 pt po line
  mt=$(median "${torch[@]}"); mo=$(median "${ours[@]}"); mp=$(median "${peak[@]}"); m1=$(median "${one[@]}")
  pt=$(calc "%.1f" "100 * $mt * $flop / ($mp * 1e9)")
  po=$(calc "%.1f" "100 * $mo * $flop / ($mp * 1e9)")
  line="$label: torch ${torch[*]} -> $mt | tapegrad ${ours[*]} -> $mo | ratio $(calc "%.2f" "$mo/$mt")"
  line+=" | % of the $threads-thread FMA peak $mp GFLOP/s: torch $pt, tapegrad $po"
  if [[ -n ${rss[0]} ]]; then line+=" | tapegrad peak RSS $(median "${rss[@]}") MiB"; fi
  echo "$line"
  # one slow probe on a noisy host is not a shared core: warn when most rounds say so
  if ((2 * shared > rounds)); then
    echo "warning: $label: in $shared of $rounds rounds the FMA probe found that the $threads threads do not add FMA throughput (medians: $threads-thread peak $mp GFLOP/s, 1 thread $m1): they share a core's FMA units (SMT siblings, or vCPUs on one host core), so this row does not show what $threads cores would do"
  fi
  if awk "BEGIN {exit !($waited > 0.1)}"; then
    echo "warning: $label: the machine was busy (the FMA probe's threads waited up to $(calc "%.0f" "100 * $waited")% of the time for a CPU): speeds are low and noisy, re-run on a quiet machine"
  fi
  peaks[$threads]+=" ${peak[*]}"
  flop_per_sample[${label%%,*}]=$flop
  rows+=("| $label | $mt | $mo | $(calc "%.2f" "$mo/$mt") | $pt% | $po% |")
}

if [[ " $workloads " == *" W1 "* && " $kinds " == *" training "* ]]; then
  for config in "1 128 3 0" "2 128 3 0" "1 1 1 5000"; do
    read -r threads batch epochs steps <<<"$config"
    compare "W1 training, $(plural "$threads" thread), batch $batch" median_samples_per_s torch_mlp.py bench_mlp \
      --threads "$threads" --batch "$batch" --epochs "$epochs" --max-steps "$steps"
  done
fi
if [[ " $workloads " == *" W2 "* && " $kinds " == *" training "* ]]; then
  for config in "1 128 1 0" "2 128 1 0"; do
    read -r threads batch epochs steps <<<"$config"
    compare "W2 training, $(plural "$threads" thread), batch $batch" median_samples_per_s torch_cnn.py bench_cnn \
      --threads "$threads" --batch "$batch" --epochs "$epochs" --max-steps "$steps"
  done
fi
# inference: samples timed per run, by workload and batch: at least a second for PyTorch
# and a third of one for tapegrad on 2 threads of the 2-core Xeon (PyTorch at about 20,000,
# 240,000, 2,300 and 3,700 samples/s; tapegrad on 2 threads 66,000, 450,000, 13,000 and
# 30,000), since runs of a tenth of a second swung by 30% on that VM (W2 at batch 256 took
# 4,096 samples, 0.15 s on 2 threads, until its 2-thread row swung between 46% and 72% of
# the peak from run to run)
declare -A infer_samples=([W1 1]=24000 [W1 256]=163840 [W2 1]=4000 [W2 256]=12288)
declare -A infer_model=([W1]="mlp bench_mlp" [W2]="cnn bench_cnn")
for workload in W1 W2; do
  if [[ " $workloads " != *" $workload "* || " $kinds " != *" inference "* ]]; then continue; fi
  read -r model example <<<"${infer_model[$workload]}"
  for batch in 1 256; do
    for threads in 1 2; do
      compare "$workload inference, $(plural "$threads" thread), batch $batch" infer_per_s \
        "torch_infer.py --model $model" "$example" \
        --threads "$threads" --infer "${infer_samples[$workload $batch]}" --infer-batch "$batch"
    done
  done
done

cpu=$(lscpu 2>/dev/null | sed -nE 's/^Model name: *//p' | head -1)
[[ -z $cpu ]] && cpu=$(sed -nE 's/^model name\s*: *//p' /proc/cpuinfo | head -1)
echo
echo "CPU: ${cpu:-unknown}, $(nproc) CPUs; measured $(date -u '+%Y-%m-%d %H:%M UTC'), $rounds rounds (medians)"
echo "f32 FMA peak (tapegrad's probe, medians): $(for n in "${!peaks[@]}"; do echo "$(plural "$n" thread) $(median ${peaks[$n]}) GFLOP/s"; done | sort -n | paste -sd ';' | sed 's/;/; /g')"
echo "Useful FLOP per sample (matrix work; training = forward + backward): $(for w in "${!flop_per_sample[@]}"; do echo "$w ${flop_per_sample[$w]}"; done | sort | paste -sd ';' | sed 's/;/; /g')"
echo
echo "| configuration | PyTorch samples/s | tapegrad samples/s | ratio | PyTorch % of peak | tapegrad % of peak |"
echo "|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
