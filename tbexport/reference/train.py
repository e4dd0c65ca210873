"""Run the reference training and return where its TensorBoard logs went."""

from __future__ import annotations

from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
)
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from .checkpoints import checkpoint_run
from .data import DigitsDataModule
from .model import DigitsClassifier


@dataclass
class TrainResult:
    """Where the logs are, and how the run ended."""

    log_dir: Path
    device: str  # "CPU", or the CUDA device's name (torch.cuda.get_device_name)
    interrupted: bool
    last_checkpoint: Path | None  # always .../checkpoints/last.ckpt, the latest epoch's


class _TensorBoardLogger(TensorBoardLogger):
    """Lightning's TensorBoardLogger, adding the run's own settings (``max_epochs``) to the
    hyperparameters, and writing TensorBoard's hparams records (the HPARAMS tab; what
    ``tbexport`` reads besides ``hparams.yaml``) with ``hp_metric`` as their metric.

    ``default_hp_metric=True`` would write those records too, but with a placeholder
    ``hp_metric = -1`` at step 0 in every new event file; hp_metric is logged for real in
    ``validation_step``, so the records here name it without logging a point.
    """

    def __init__(self, save_dir: Path, version: int | None, run_hparams: dict[str, Any]) -> None:
        super().__init__(save_dir, name="lightning_logs", version=version, default_hp_metric=False)
        self._run_hparams = run_hparams

    @rank_zero_only
    def log_hyperparams(
        self,
        params: dict[str, Any] | Namespace,
        metrics: dict[str, Any] | None = None,
        step: int | None = None,
    ) -> None:
        params = {**(vars(params) if isinstance(params, Namespace) else params)}
        params |= self._run_hparams
        super().log_hyperparams(params, metrics, step)  # -> self.hparams -> hparams.yaml
        if metrics is None:
            from torch.utils.tensorboard.summary import hparams

            values = self._sanitize_params(dict(self.hparams))  # all so far, as hparams.yaml
            records = hparams(values, {"hp_metric": 0})  # type: ignore[no-untyped-call]
            writer = self.experiment._get_file_writer()
            for record in records:
                writer.add_summary(record, step)


class _StopAtStep(Callback):
    """Simulates a crash at a given global step (for the resume demo)."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.fired = False

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step >= self.step:
            self.fired = True
            raise KeyboardInterrupt  # Lightning shuts down as on Ctrl-C; no checkpoint is saved


def train(
    out: Path = Path("."),
    *,
    max_epochs: int = 12,
    seed: int = 0,
    lr: float = 1e-3,
    batch_size: int = 32,
    accelerator: str = "auto",
    resume: Path | None = None,
    stop_at_step: int | None = None,
    limit_train_batches: int | float = 1.0,
    csv_log: bool = False,
    progress_bar: bool = True,
) -> TrainResult:
    """Train the digits CNN, logging to ``out/lightning_logs/version_N`` with TensorBoardLogger."""
    pl.seed_everything(seed, workers=True)
    on_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    found = checkpoint_run(resume) if resume else None
    version = found[1] if found else None
    tensorboard = _TensorBoardLogger(out, version, {"max_epochs": max_epochs})
    loggers: list[pl.loggers.Logger] = [tensorboard]
    if csv_log:
        loggers.append(CSVLogger(out, name="csv_logs", version=version))
    checkpoint = ModelCheckpoint(
        # Absolute, so that a resume through another path to the same run (the command line
        # resolves it) restores the callback's state (best score, kept files) instead of
        # starting over.
        dirpath=Path(tensorboard.log_dir).resolve() / "checkpoints",
        monitor="val_loss",
        mode="min",
        save_top_k=1,
        save_last=True,
        # last.ckpt is always the latest: overwritten, never last-v1.ckpt beside an old one
        # (which a second resume from last.ckpt would go back to).
        enable_version_counter=False,
    )
    callbacks: list[Callback] = [
        checkpoint,
        EarlyStopping(monitor="val_loss", mode="min", patience=5),
        LearningRateMonitor(logging_interval="epoch"),
    ]
    stopper = _StopAtStep(stop_at_step if stop_at_step is not None else -1)
    if stop_at_step is not None:
        callbacks.append(stopper)
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        accelerator="gpu" if on_gpu else ("cpu" if accelerator == "auto" else accelerator),
        devices=1,
        precision="16-mixed" if on_gpu else "32-true",
        deterministic=not on_gpu,
        logger=loggers,
        callbacks=callbacks,
        log_every_n_steps=1,
        limit_train_batches=limit_train_batches,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
    )
    model = DigitsClassifier(lr=lr)
    data = DigitsDataModule(batch_size=batch_size, seed=seed)
    try:
        trainer.fit(model, datamodule=data, ckpt_path=str(resume) if resume else None)
    except SystemExit:
        # Lightning exits after a KeyboardInterrupt; ours is the simulated crash.
        if not stopper.fired:
            raise
    interrupted = stopper.fired or trainer.interrupted
    if not interrupted:
        trainer.test(
            model,
            datamodule=data,
            ckpt_path="best" if checkpoint.best_model_path else None,
            verbose=False,
        )
    last = Path(checkpoint.last_model_path) if checkpoint.last_model_path else None
    root = trainer.strategy.root_device  # where training ran, not merely what was asked for
    device = torch.cuda.get_device_name(root) if root.type == "cuda" else "CPU"
    return TrainResult(Path(str(tensorboard.log_dir)), device, interrupted, last)
