#!/usr/bin/env bash
# The prepared GPU check (issues 14 and 22): one run of at most 9.5 minutes on a machine with one GPU.
#
#   benchmarks/gpu_check.sh OUT_DIR          # on the GPU machine (KERAS_BACKEND=jax unless set)
#   benchmarks/gpu_check.sh OUT_DIR --dry    # small sizes, any machine (the tests run this on the CPU)
#
# Writes into OUT_DIR:
#   device.txt      what JAX and Keras see
#   training.txt    images/s of `workbench train`'s pipeline (default trunk, 64x64, pmi head) against a bare
#                   model.fit on the same device (goal: >= 20,000 images/s, ratio >= 0.9)
#   eigh.json       the embedding's dense eigh through JAX at 17,000 labels: seconds and residuals
#   compare.txt     the `full` profile's comparison heads for one seed and a few epochs (what fits)
#   study.txt       the full-size study grid (docs/study/grid-full.toml: 1,870 labels, 64x64) run for its time
#                   limit into OUT_DIR/study, then how far it came (benchmarks/gpu_study.py progress) and the
#                   hours the whole grid takes at training.txt's images/s; run again with the same OUT_DIR and
#                   it resumes (finished cells skipped, unfinished runs go on after their last epoch).
#                   --dry runs a cut-down copy of that grid (gpu_study.py dry-grid) to the end instead.
#   summary.txt     one line per step: ok, stopped at its time limit, failed or skipped, and its seconds
# Every step has its own time limit (60 s + 3 × 120 s + 150 s = 9.5 minutes in all on the GPU machine), so one
# slow step cannot use up the others' time.
# It needs the package importable (run from the repository root; PYTHONPATH is set below) and
# keras, jax, scipy, numpy, pillow; the comparison also needs the colour emoji font (skipped without).
set -uo pipefail
out=${1:?usage: benchmarks/gpu_check.sh OUT_DIR [--dry]}
mode=${2:-}
cd "$(dirname "$0")/.."
mkdir -p "$out"
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
export TF_CPP_MIN_LOG_LEVEL=3
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python=${PYTHON:-python3}
if [ "$mode" = "--dry" ]; then
  images=128; batch=32; workers=2; labels=300; dim=16; scenes=160; scene_labels=30; epochs=1; size=16; width=4; limit=200
  study_grid="$out/grid-dry.toml"; study_limit=400
  "$python" benchmarks/gpu_study.py dry-grid docs/study/grid-full.toml "$study_grid"
else
  images=51200; batch=512; workers=12; labels=17000; dim=1024; scenes=30000; scene_labels=500; epochs=3; size=64; width=32; limit=120
  study_grid=docs/study/grid-full.toml; study_limit=150
fi
: > "$out/summary.txt"

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log its outcome
  local name=$1 seconds=$2; shift 2
  local began=$SECONDS
  timeout "$seconds" "$@"
  local status=$?
  if [ $status -eq 0 ]; then
    echo "$name: ok ($((SECONDS - began)) s)" >> "$out/summary.txt"
  elif [ $status -eq 124 ]; then
    echo "$name: stopped at its time limit of $seconds s ($((SECONDS - began)) s)" >> "$out/summary.txt"
  else
    echo "$name: failed, status $status ($((SECONDS - began)) s)" >> "$out/summary.txt"
  fi
}

step device 60 "$python" -c "import jax, keras; print('jax', jax.__version__, jax.devices()); print('keras', keras.__version__, keras.backend.backend())" > "$out/device.txt" 2>&1
step training $limit "$python" benchmarks/bench_training.py --images $images --batch-size $batch --epochs 3 --repeats 1 \
  --workers $workers --validation-images $batch --image-size $size > "$out/training.txt" 2>&1
step eigh $limit "$python" benchmarks/gpu_eigh.py --labels $labels --dim $dim --out "$out/eigh.json" $([ "$mode" = "--dry" ] && echo --reference) > "$out/eigh.txt" 2>&1
if fc-list 2>/dev/null | grep -qi "color emoji"; then
  step compare $limit bash -c "\"$python\" -m workbench.cli scenes --images $scenes --labels $scene_labels --size $size --seed 0 \
    --out \"$out/scenes\" > \"$out/compare.txt\" 2>&1 && \"$python\" -m workbench.cli compare --data \"$out/scenes\" --dim 64 \
    --heads pmi,random,identity,sigmoid --seeds 1 --epochs $epochs --image-size $size --batch-size $batch --width $width \
    --validation-fraction 0.1 --out \"$out/compare\" >> \"$out/compare.txt\" 2>&1"
  rm -rf "$out/scenes"
  step study $study_limit "$python" -m workbench.cli experiment --grid "$study_grid" --out "$out/study" --cores 1 \
    > "$out/study.txt" 2>&1
  rate=$(sed -n 's/^pipeline \([0-9.]*\) images\/s.*/\1/p' "$out/training.txt" 2>/dev/null)
  "$python" benchmarks/gpu_study.py progress "$out/study" "$study_grid" ${rate:+--images-per-second $rate} >> "$out/study.txt" 2>&1
else
  echo "compare: skipped (no colour emoji font: apt-get install fonts-noto-color-emoji)" >> "$out/summary.txt"
  echo "study: skipped (no colour emoji font: apt-get install fonts-noto-color-emoji)" >> "$out/summary.txt"
fi
cat "$out/summary.txt"
