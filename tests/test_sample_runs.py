"""The committed Lightning logs in sample_runs/: exact tags, counts and restart handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import tbexport

TAGS = {
    "epoch",
    "hp_metric",
    "lr-AdamW",
    "test_acc",
    "test_loss",
    "train_acc",
    "train_loss_epoch",
    "train_loss_step",
    "val_acc",
    "val_loss",
    "val_metrics/precision_macro",
    "val_metrics/recall_macro",
}
STEPS_PER_EPOCH, EPOCHS = 38, 12


def test_tag_set_and_point_counts(sample_runs: Path) -> None:
    frame = tbexport.read_scalars(sample_runs)
    assert list(frame["run"].cat.categories) == [f"lightning_logs/version_{i}" for i in range(3)]
    counts = frame.groupby(["run", "tag"], observed=True).size()
    for run in frame["run"].cat.categories:
        per_tag = counts[run].to_dict()
        assert set(per_tag) == TAGS
        assert per_tag["train_loss_step"] == STEPS_PER_EPOCH * EPOCHS
        assert per_tag["train_acc"] == STEPS_PER_EPOCH * EPOCHS
        assert per_tag["epoch"] == STEPS_PER_EPOCH * EPOCHS + 1  # + the test phase's
        for tag in ("val_loss", "val_acc", "train_loss_epoch", "hp_metric", "lr-AdamW"):
            assert per_tag[tag] == EPOCHS, tag
        assert per_tag["test_acc"] == per_tag["test_loss"] == 1


def test_validation_steps_are_epoch_ends(sample_runs: Path) -> None:
    frame = tbexport.read_scalars(sample_runs / "lightning_logs" / "version_0", tags=["val_loss"])
    assert frame["step"].tolist() == [STEPS_PER_EPOCH * (e + 1) - 1 for e in range(EPOCHS)]
    accuracy = tbexport.read_scalars(sample_runs / "lightning_logs" / "version_0", tags=["val_acc"])
    assert accuracy["value"].iloc[-1] > 0.9  # the reference model really learns


def test_resumed_run_overlap_is_resolved(sample_runs: Path) -> None:
    run = sample_runs / "lightning_logs" / "version_2"
    files = sorted(run.glob("events.out.tfevents.*"))
    assert len(files) == 3
    first = tbexport.read_scalars(files[0], tags=["train_loss_step"])
    second = tbexport.read_scalars(files[1], tags=["train_loss_step"])
    # interrupted at step 100; resumed from the end-of-epoch-2 checkpoint (step 76)
    assert first["step"].tolist() == list(range(99))  # the crash loses the last step's log
    assert second["step"].iloc[0] == 2 * STEPS_PER_EPOCH
    everything = tbexport.read_scalars(run, tags=["train_loss_step"], keep_duplicates=True)
    assert len(everything) == 99 + (EPOCHS - 2) * STEPS_PER_EPOCH
    merged = tbexport.read_scalars(run, tags=["train_loss_step"])
    assert merged["step"].tolist() == list(range(STEPS_PER_EPOCH * EPOCHS))
    # steps 76..98 come from the resumed file, earlier ones from the first
    assert np.array_equal(merged["value"].to_numpy()[:76], first["value"].to_numpy()[:76])
    assert np.array_equal(merged["value"].to_numpy()[76:], second["value"].to_numpy())
