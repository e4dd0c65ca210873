#!/usr/bin/env bash
# Regenerates sample_runs/lightning_logs with the reference training.
# Needs the train extra: pip install torch==2.13.0 -e '.[train]'
set -euo pipefail
cd "$(dirname "$0")"
rm -rf lightning_logs
train() { python -m tbexport.reference --out . "$@" 2>/dev/null | tail -n 4; }
train --seed 0 --lr 1e-3                     # version_0
train --seed 1 --lr 3e-3                     # version_1
train --seed 2 --lr 1e-3 --stop-at-step 100  # version_2, interrupted in epoch 3 ...
train --seed 2 --lr 1e-3 --resume lightning_logs/version_2/checkpoints/last.ckpt  # ... resumed
rm -rf lightning_logs/*/checkpoints
du -sh lightning_logs
