"""The bundled Lightning training: a short CPU run read back by tbexport, checked against
the values Lightning's own CSVLogger wrote in the same run."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import tbexport

from .test_sample_runs import TAGS as REFERENCE_TAGS

pytest.importorskip("pytorch_lightning", reason="needs the train extra: pip install -e '.[train]'")
pytest.importorskip("sklearn", reason="needs the train extra: pip install -e '.[train]'")


def _csv_logged(path: Path) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    with path.open() as handle:
        for row in csv.DictReader(handle):
            for key, text in row.items():
                if key != "step" and text:
                    series.setdefault(key, []).append((int(row["step"]), float(text)))
    return series


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_short_cpu_training_matches_lightnings_csv_logger(tmp_path: Path) -> None:
    from tbexport.reference.train import train

    result = train(
        tmp_path,
        max_epochs=2,
        limit_train_batches=6,
        accelerator="cpu",
        csv_log=True,
        progress_bar=False,
    )
    assert result.device == "CPU" and not result.interrupted
    assert result.log_dir == tmp_path / "lightning_logs" / "version_0"
    assert (result.log_dir / "hparams.yaml").read_text().count("lr: 0.001") == 1

    frame = tbexport.read_scalars(result.log_dir)
    tags = set(frame["tag"].astype(str))
    assert tags == REFERENCE_TAGS  # the tags the committed sample_runs hold too
    logged = _csv_logged(tmp_path / "csv_logs" / "version_0" / "metrics.csv")
    for tag in (
        "train_loss_step",
        "train_acc",
        "val_loss",
        "val_acc",
        "train_loss_epoch",
        "val_metrics/precision_macro",
        "test_acc",
    ):
        ours = frame[frame["tag"] == tag]
        assert (
            list(zip(ours["step"].tolist(), ours["value"].tolist(), strict=True)) == logged[tag]
        ), tag
    assert len(logged["train_loss_step"]) == 12  # 2 epochs x 6 batches, every step logged


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_cpu_training_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    from tbexport.reference.train import train

    logged = []
    for attempt in ("a", "b"):
        result = train(
            tmp_path / attempt,
            max_epochs=1,
            limit_train_batches=4,
            seed=3,
            accelerator="cpu",
            progress_bar=False,
        )
        frame = tbexport.read_scalars(result.log_dir, tags=["train_loss_step", "val_loss"])
        logged.append(frame[["tag", "step", "value"]].astype(str).values.tolist())
    assert logged[0] == logged[1]
    assert len(logged[0]) == 4 + 1


def test_a_resume_logs_into_the_checkpoints_own_run_unless_told(tmp_path: Path) -> None:
    from tbexport.reference.checkpoints import checkpoint_run

    checkpoint = tmp_path / "exp" / "lightning_logs" / "version_3" / "checkpoints" / "last.ckpt"
    assert checkpoint_run(checkpoint) == ((tmp_path / "exp").resolve(), 3)
    assert checkpoint_run(tmp_path / "elsewhere" / "model.ckpt") is None
    # a copy kept elsewhere starts a new version rather than log into another run's
    backup = tmp_path / "backup" / "version_3" / "checkpoints" / "last.ckpt"
    assert checkpoint_run(backup) is None


def test_train_command_rejects_bad_values_in_one_line() -> None:
    from click.testing import CliRunner

    from tbexport.reference.__main__ import main

    for option, value, message in (
        ("--batch-size", "0", "0 is not in the range x>=1."),
        ("--lr", "-1", "-1.0 is not in the range x>0."),
    ):
        result = CliRunner().invoke(main, [option, value])
        assert result.exit_code == 2
        assert result.stderr.endswith(f"Error: Invalid value for '{option}': {message}\n")
