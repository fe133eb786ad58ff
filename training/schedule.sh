#!/bin/sh
# The training schedule of the bundled model and of its ResNet50 baseline: the same five stages, seeds and
# data for both archs. Each stage starts from the previous stage's weights (--init) with a fresh warm-up and
# cosine decay. Re-running the script skips finished stages and resumes an interrupted one from its
# checkpoint, so a schedule longer than one sitting is run in pieces:
#
#   sh training/schedule.sh fasternet_t0 [THREADS]
#   sh training/schedule.sh resnet50 [THREADS]
#
# Stages 1-4 use the 4000-canvas split, stage 5 the 20000-canvas one (training/README.md has the commands that
# make them). Runs go to training/runs/<arch>_s<N>/ (git-ignored).
set -eu
arch=${1:?usage: sh training/schedule.sh ARCH [THREADS]}
threads=${2:-1}
cd "$(dirname "$0")/.."
runs=training/runs
py=/usr/bin/python3

stage() { # stage N DATA ITERS BATCH WARMUP SEED CKPT_EVERY
  n=$1; out=$runs/${arch}_s$n
  if [ -f "$out/model_final.pth" ]; then echo "stage $n: done ($out)"; return; fi
  init=""
  if [ "$n" -gt 1 ]; then init="--init $runs/${arch}_s$((n - 1))/model_final.pth"; fi
  resume=""
  if [ -f "$out/checkpoint.pth" ]; then resume="--resume"; fi
  echo "stage $n: $out $resume"
  # shellcheck disable=SC2086
  $py training/train.py --arch "$arch" --head-channels 128 --data "$2" --out "$out" $init $resume \
    --iters "$3" --batch "$4" --lr 3e-4 --warmup "$5" --seed "$6" --threads "$threads" --log-every 20 --ckpt-every "$7"
}

small=training/data/canvases_train
large=training/data/canvases_train20k
stage 1 $small 400 2 50 0 100
stage 2 $small 600 2 20 1 100
stage 3 $small 800 4 20 2 100
stage 4 $small 1800 4 20 3 200
stage 5 $large 2800 4 20 4 200
