#!/usr/bin/env bash
# The reference training's GPU path, end to end, on a machine with one CUDA GPU:
#   1. installs the project offline (pip --no-index --no-build-isolation, against the
#      torch/Lightning already there; nothing is downloaded),
#   2. trains 2 epochs with --accelerator auto, "crashing" at step 50 and resuming from
#      last.ckpt as the README says,
#   3. checks that it ran on CUDA in 16-mixed and that last.ckpt holds the final step,
#   4. exports the logs with tbexport (-o gpu.xlsx, --list) and prints a summary.
# About a minute on an H200 (two Lightning start-ups dominate).
#
# Usage: bash benchmarks/gpu_check.sh [RESULTS_DIR]
#   RESULTS_DIR receives summary.txt, list.txt, train.log, export.log, pip.log and
#   gpu.xlsx, also after a failure (default: a new directory under /tmp).
# Environment:
#   PYTHON=python3            the interpreter whose torch has CUDA
#   WHEELS=DIR                wheels of missing dependencies, installed offline first
#   GPU_CHECK_ACCELERATOR=cpu the same commands on the CPU, without the CUDA checks
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
ACCELERATOR=${GPU_CHECK_ACCELERATOR:-auto}
WORK=$(mktemp -d /tmp/tbexport-gpu-check.XXXXXX)
RESULTS=${1:-$WORK/results}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_INPUT=1
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
STARTED=$SECONDS
SUMMARY=$WORK/summary.txt
: >"$SUMMARY"

say() { echo "$*" | tee -a "$SUMMARY"; }
readable() { tr '\r' '\n' <"$1" | grep -av '^\s*$' | grep -av 'it/s' || true; }
keep_results() {
    for name in summary.txt list.txt train.log export.log pip.log gpu.xlsx; do
        if [[ -f $WORK/$name ]]; then cp "$WORK/$name" "$RESULTS/"; fi
    done
    if [[ -f $RESULTS/train.log ]]; then  # without the progress bars' carriage returns
        readable "$WORK/train.log" >"$RESULTS/train.log"
    fi
}
trap keep_results EXIT
fail() {
    say "FAILED: $1"
    if [[ -n ${2:-} && -f $2 ]]; then
        echo "--- last lines of $(basename "$2") ---"
        readable "$2" | tail -n 25
    fi
    say "(${SECONDS}s; logs in $RESULTS)"
    exit 1
}

say "== tbexport GPU check ($(date -u +%FT%TZ), $(uname -n))"
if command -v nvidia-smi >/dev/null; then
    say "nvidia-smi: $(nvidia-smi -L 2>&1 | head -n 1)"
fi

# -- 1. install, offline ------------------------------------------------------------
cd "$REPO"
pip_offline=("$PY" -m pip install -q --no-index --no-build-isolation)
if [[ -n ${WHEELS:-} ]]; then
    pip_offline+=(--find-links "$WHEELS")
    "${pip_offline[@]}" --no-deps "$WHEELS"/*.whl >>"$WORK/pip.log" 2>&1 \
        || fail "installing the wheels in $WHEELS" "$WORK/pip.log"
fi
t0=$SECONDS
if timeout 300 "${pip_offline[@]}" -e ".[train]" >>"$WORK/pip.log" 2>&1; then
    say "install: pip install -e '.[train]' (offline) ok"
elif timeout 300 "${pip_offline[@]}" --no-deps -e . >>"$WORK/pip.log" 2>&1; then
    say "install: -e '.[train]' could not resolve offline ($(grep -a 'ERROR' "$WORK/pip.log" \
        | head -n 1 | cut -c1-120)); installed with --no-deps"
else
    say "install: pip failed (see pip.log); using the checkout on PYTHONPATH"
    timeout 300 "$PY" setup.py -q build_ext --inplace >>"$WORK/pip.log" 2>&1 || true
    export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
fi
say "install took $((SECONDS - t0))s"

# What the training and the export need, and where tbexport comes from.
cd "$WORK"
"$PY" - >"$WORK/env.txt" 2>&1 <<'EOF' || { cat "$WORK/env.txt"; fail "environment check"; }
import importlib.util
import sys

need = ["torch", "pytorch_lightning", "sklearn", "tensorboard", "numpy", "pandas", "scipy",
        "click", "tqdm", "yaml", "matplotlib"]
missing = [name for name in need if importlib.util.find_spec(name) is None]
if missing:
    sys.exit(f"missing modules: {', '.join(missing)} (carry their wheels: WHEELS=DIR)")
import pytorch_lightning as pl
import torch

import tbexport
from tbexport import records

fast = records._c_masked_crc32c is not None
crc = fast or importlib.util.find_spec("crc32c") is not None
print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}),"
      f" Lightning {pl.__version__}, tbexport {tbexport.__version__} from {tbexport.__file__}")
print(f"CUDA available: {torch.cuda.is_available()}"
      + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
print(f"tbexport C fast path: {'yes' if fast else 'no'}")
print("VERIFY=" + ("yes" if crc else "no"))
EOF
grep -v '^VERIFY=' "$WORK/env.txt" | tee -a "$SUMMARY"
verify=()
if grep -q '^VERIFY=no' "$WORK/env.txt"; then
    say "no C fast path and no crc32c package: tbexport runs with --no-verify"
    verify=(--no-verify)
fi
if [[ $ACCELERATOR == auto ]] && ! grep -q '^CUDA available: True' "$WORK/env.txt"; then
    fail "torch sees no CUDA device"
fi

# -- 2. train: 2 epochs of 38 steps, interrupted at step 50, resumed from last.ckpt ----
train() {
    echo "\$ tbexport-train $*" >>"$WORK/train.log"
    timeout 300 "$PY" -m tbexport.reference "$@" >>"$WORK/train.log" 2>&1
}
t0=$SECONDS
train --out runs --max-epochs 2 --stop-at-step 50 --accelerator "$ACCELERATOR" \
    || fail "training (to the simulated crash at step 50)" "$WORK/train.log"
checkpoints=runs/lightning_logs/version_0/checkpoints
[[ -f $checkpoints/last.ckpt ]] || fail "no $checkpoints/last.ckpt after epoch 0" "$WORK/train.log"
train --resume "$checkpoints/last.ckpt" --max-epochs 2 --accelerator "$ACCELERATOR" \
    || fail "resumed training" "$WORK/train.log"
say "training (crash + resume) took $((SECONDS - t0))s"
readable "$WORK/train.log" | grep -aE '^(GPU available|Training (finished|interrupted))' \
    | tee -a "$SUMMARY"

# -- 3. checks -----------------------------------------------------------------------
if [[ $ACCELERATOR == auto ]]; then
    used=$(grep -ac 'GPU available: True (cuda), used: True' "$WORK/train.log" || true)
    [[ $used -ge 2 ]] || fail "Lightning did not say it used the CUDA GPU in both runs" \
        "$WORK/train.log"
    if readable "$WORK/train.log" | grep -aE '^Training (finished|interrupted) on CPU'; then
        fail "TrainResult.device says CPU" "$WORK/train.log"
    fi
fi
"$PY" - "$ACCELERATOR" 2>&1 <<'EOF' | tee -a "$SUMMARY" || fail "checkpoints"
import sys
from pathlib import Path

import torch

checkpoints = Path("runs/lightning_logs/version_0/checkpoints")
names = sorted(path.name for path in checkpoints.iterdir())
last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
print(f"checkpoints: {', '.join(names)}; last.ckpt at global step {last['global_step']}")
assert last["global_step"] == 2 * 38, "last.ckpt is not the final step (76)"
assert "last-v1.ckpt" not in names, "a last-v1.ckpt was written"
if sys.argv[1] == "auto":
    assert "MixedPrecision" in last, "no 16-mixed GradScaler state in last.ckpt"
    print(f"16-mixed: GradScaler state saved (scale {last['MixedPrecision'].get('scale')})")
EOF

# -- 4. export with tbexport -----------------------------------------------------------
t0=$SECONDS
timeout 120 "$PY" -m tbexport runs/lightning_logs -o gpu.xlsx "${verify[@]}" \
    >"$WORK/export.log" 2>&1 || fail "tbexport -o gpu.xlsx" "$WORK/export.log"
timeout 120 "$PY" -m tbexport runs/lightning_logs --list "${verify[@]}" \
    >"$WORK/list.txt" 2>&1 || fail "tbexport --list" "$WORK/list.txt"
say "tbexport (-o gpu.xlsx, --list) took $((SECONDS - t0))s: $(readable "$WORK/export.log" \
    | tail -n 1)"
cat "$WORK/list.txt"
"$PY" - "${#verify[@]}" 2>&1 <<'EOF' | tee -a "$SUMMARY" || fail "reading the export"
import sys
import zipfile

import tbexport

with zipfile.ZipFile("gpu.xlsx") as book:
    sheets = [n for n in book.namelist() if n.startswith("xl/worksheets/sheet")]
data = tbexport.load_scalars("runs/lightning_logs", verify=sys.argv[1] == "0")
frame, hparams = data.frame, data.hparams["version_0"]
last = frame.groupby("tag", observed=True).last()
print(f"gpu.xlsx: {len(sheets)} sheets; {frame['tag'].nunique()} tags, {len(frame)} points")
print(f"hparams: {', '.join(f'{k}={v}' for k, v in hparams.items() if k != 'run')}")
print(f"val_acc {last.loc['val_acc', 'value']:.4f} at step {last.loc['val_acc', 'step']},"
      f" test_acc {last.loc['test_acc', 'value']:.4f}")
assert int(frame[frame["tag"] == "train_loss_step"]["step"].max()) == 75
assert {"seed", "batch_size", "max_epochs"} <= set(hparams), "hparams lack seed/batch_size/..."
EOF
say "OK: GPU check passed ($ACCELERATOR) in $((SECONDS - STARTED))s; results in $RESULTS"
