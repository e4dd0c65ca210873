"""Logs written by PyTorch's SummaryWriter and tensorboardX, read back exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tbexport

pytestmark = pytest.mark.usefixtures("reader")

torch_tb = pytest.importorskip("torch.utils.tensorboard", reason="needs torch (test extra)")


def _series(frame, tag: str) -> tuple[list[int], list[float]]:  # type: ignore[no-untyped-def]
    part = frame[frame["tag"] == tag]
    return part["step"].tolist(), part["value"].tolist()


def test_pytorch_summary_writer_simple_value(tmp_path: Path) -> None:
    values = np.linspace(2.5, 0.1, 300, dtype=np.float32)
    with torch_tb.SummaryWriter(tmp_path / "version_0") as writer:
        for step, value in enumerate(values):
            writer.add_scalar("train/loss", float(value), step, walltime=1_700_000_000.0 + step)
            if step % 50 == 0:
                writer.add_scalar("val_loss", float(value) * 2, step)
        writer.add_histogram("weights", np.arange(10.0), 0)
        writer.add_text("note", "hello", 0)
    frame = tbexport.read_scalars(tmp_path)
    assert set(frame["run"].astype(str)) == {"version_0"}
    assert sorted(frame["tag"].cat.categories) == ["train/loss", "val_loss"]
    steps, got = _series(frame, "train/loss")
    assert steps == list(range(300))
    assert got == values.astype(np.float64).tolist()
    walls = frame[frame["tag"] == "train/loss"]["wall_time"].tolist()
    assert walls == [1_700_000_000.0 + s for s in range(300)]
    assert _series(frame, "val_loss") == (
        list(range(0, 300, 50)),
        [float(np.float32(float(values[s]) * 2)) for s in range(0, 300, 50)],
    )


def test_pytorch_new_style_double_precision(tmp_path: Path) -> None:
    with torch_tb.SummaryWriter(tmp_path) as writer:
        for step in range(20):
            writer.add_scalar("exact", 1 / 3 + step, step, new_style=True, double_precision=True)
            writer.add_scalar("single", 1 / 3 + step, step, new_style=True)
    frame = tbexport.read_scalars(tmp_path)
    assert _series(frame, "exact") == (list(range(20)), [1 / 3 + s for s in range(20)])
    assert _series(frame, "single") == (
        list(range(20)),
        [float(np.float32(1 / 3 + s)) for s in range(20)],
    )


def test_tensorboardx_writer(tmp_path: Path) -> None:
    tbx = pytest.importorskip("tensorboardX")
    with tbx.SummaryWriter(str(tmp_path / "run")) as writer:
        for step in range(50):
            writer.add_scalar("acc", step / 50, step)
    frame = tbexport.read_scalars(tmp_path / "run")
    assert _series(frame, "acc") == (
        list(range(50)),
        [float(np.float32(s / 50)) for s in range(50)],
    )


def test_add_scalars_subdirectories_are_runs(tmp_path: Path) -> None:
    with torch_tb.SummaryWriter(tmp_path / "version_0") as writer:
        for step in range(10):
            writer.add_scalars("loss", {"train": 1.0 - step / 10, "val": 2.0 - step / 10}, step)
            writer.add_scalar("lr", 0.01, step)
    frame = tbexport.read_scalars(tmp_path / "version_0")
    runs = sorted(frame["run"].cat.categories)
    assert runs == ["loss_train", "loss_val", "version_0"]
    train = frame[frame["run"] == "loss_train"]
    assert train["tag"].astype(str).unique().tolist() == ["loss"]
    assert train["value"].tolist() == [float(np.float32(1.0 - s / 10)) for s in range(10)]
    assert frame[frame["run"] == "version_0"]["tag"].astype(str).unique().tolist() == ["lr"]


def test_resumed_writer_with_purge_step(tmp_path: Path) -> None:
    run = tmp_path / "version_0"
    with torch_tb.SummaryWriter(run, filename_suffix=".a") as writer:
        for step in range(100):
            writer.add_scalar("loss", 1.0, step)
        writer.add_scalar("val_loss", 5.0, 90)  # logged once, after the checkpoint at step 60
    with torch_tb.SummaryWriter(run, purge_step=60, filename_suffix=".b") as writer:
        for step in range(60, 120):
            writer.add_scalar("loss", 2.0, step)
    frame = tbexport.read_scalars(run)
    steps, values = _series(frame, "loss")
    assert steps == list(range(120))
    assert values == [1.0] * 60 + [2.0] * 60
    assert "val_loss" not in set(frame["tag"].astype(str))  # purged like TensorBoard does
    everything = tbexport.read_scalars(run, keep_duplicates=True)
    assert len(everything) == 100 + 1 + 60


def test_wide_view(tmp_path: Path) -> None:
    with torch_tb.SummaryWriter(tmp_path / "a") as writer:
        for step in range(4):
            writer.add_scalar("loss", 1.0 + step, step)
            if step % 2:
                writer.add_scalar("acc", 0.5, step)
    wide = tbexport.to_wide(tbexport.read_scalars(tmp_path))
    assert list(wide.columns) == ["run", "step", "acc", "loss"]
    assert wide["step"].tolist() == [0, 1, 2, 3]
    assert wide["loss"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert np.isnan(wide["acc"][0]) and wide["acc"][1] == 0.5
