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


def _global_step(checkpoint: Path) -> int:
    import torch

    step: int = torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"]
    return step


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_last_ckpt_stays_the_latest_through_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from tbexport.reference.__main__ import main

    monkeypatch.chdir(tmp_path)
    # 1,200 images in batches of 256: 5 steps an epoch
    common = ["--batch-size", "256", "--accelerator", "cpu"]
    runner = CliRunner()
    crash = ["--out", "runs", "--max-epochs", "3", "--stop-at-step", "7"]
    crashed = runner.invoke(main, [*crash, *common])
    assert crashed.exit_code == 0, crashed.output
    assert "Training interrupted" in crashed.output
    checkpoints = Path("runs/lightning_logs/version_0/checkpoints")
    assert _global_step(checkpoints / "last.ckpt") == 5  # the end of epoch 0

    # the README's resume command (no --out, so the run's path is now absolute), then
    # again after the runs were moved (the checkpoint's callback state names another path)
    for max_epochs, step, moved in (("2", 10, False), ("3", 15, True)):
        if moved:
            Path("runs").rename("moved")
            checkpoints = Path("moved/lightning_logs/version_0/checkpoints")
        resume = ["--resume", str(checkpoints / "last.ckpt"), "--max-epochs", max_epochs]
        resumed = runner.invoke(main, [*resume, *common])
        assert resumed.exit_code == 0, resumed.output
        assert _global_step(checkpoints / "last.ckpt") == step
        names = sorted(path.name for path in checkpoints.iterdir())
        assert "last-v1.ckpt" not in names and names[-1] == "last.ckpt", names
        if not moved:  # the callback's state came back: the best checkpoint is kept alone
            assert len(names) == 2, names
    assert [path.name for path in checkpoints.parents[1].iterdir()] == ["version_0"]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_seed_batch_size_and_max_epochs_are_hyperparameters(tmp_path: Path) -> None:
    import pandas as pd

    from tbexport.reference.train import train

    for seed in (0, 1):
        train(
            tmp_path,
            max_epochs=1,
            seed=seed,
            batch_size=64,
            limit_train_batches=2,
            accelerator="cpu",
            progress_bar=False,
        )
    logs = tmp_path / "lightning_logs"
    expected = {"seed": [0, 1], "batch_size": [64, 64], "max_epochs": [1, 1], "lr": [1e-3] * 2}
    hparams = tbexport.read_hparams(logs).sort_values("run")
    assert hparams["run"].tolist() == ["version_0", "version_1"]
    for key, values in expected.items():
        assert hparams[key].tolist() == values, key
    assert "max_epochs: 1\n" in (logs / "version_1" / "hparams.yaml").read_text()

    result = tbexport.export(logs, tmp_path / "by_seed.csv", name_by="hparam:seed")
    assert set(pd.read_csv(result.output)["run"]) == {"seed=0", "seed=1"}

    # the event file's hparams records hold them too (TensorBoard's HPARAMS tab)
    (logs / "version_1" / "hparams.yaml").unlink()
    from_events = tbexport.read_hparams(logs / "version_1")
    for key, values in expected.items():
        assert from_events[key].tolist() == [float(values[1])], key
    assert tbexport.read_scalars(logs / "version_1", tags=["hp_metric"])["step"].min() > 0


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
