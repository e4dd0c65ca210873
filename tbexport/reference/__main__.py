"""``tbexport-train`` / ``python -m tbexport.reference``: run the reference training."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .checkpoints import checkpoint_run

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--max-epochs",
    default=12,
    type=click.IntRange(min=0),
    show_default=True,
    help="Upper bound on epochs (EarlyStopping on val_loss may stop sooner).",
)
@click.option(
    "--seed", default=0, show_default=True, help="Seed for data split, init and shuffling."
)
@click.option(
    "--lr",
    default=1e-3,
    type=click.FloatRange(min=0, min_open=True),
    show_default=True,
    help="AdamW learning rate (StepLR halves it every 4 epochs).",
)
@click.option(
    "--batch-size",
    default=32,
    type=click.IntRange(min=1),
    show_default=True,
    help="Training batch size.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Logs go to OUT/lightning_logs/version_N.  [default: the current directory; "
    "with --resume, the one holding the checkpoint's lightning_logs]",
)
@click.option(
    "--accelerator",
    type=click.Choice(["auto", "cpu", "gpu"]),
    default="auto",
    show_default=True,
    help="auto: the GPU when CUDA is available (16-mixed), else CPU (fp32).",
)
@click.option(
    "--resume",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Resume from a checkpoint; logs continue in that checkpoint's version_N, whose "
    "checkpoints/last.ckpt is always the latest epoch's.",
)
@click.option(
    "--stop-at-step",
    type=click.IntRange(min=1),
    default=None,
    help="Interrupt training at this global step (simulates a crash, for resume demos).",
)
def main(
    max_epochs: int,
    seed: int,
    lr: float,
    batch_size: int,
    out: Path | None,
    accelerator: str,
    resume: Path | None,
    stop_at_step: int | None,
) -> None:
    """Train a small CNN on scikit-learn's bundled 8x8 digits with PyTorch Lightning.

    Logs train/val/test loss and accuracy, grouped val_metrics/*, the learning rate
    and hyperparameters to TensorBoard, exactly as a typical Lightning project does.

    \b
    Examples:
      tbexport-train --out runs                     # runs/lightning_logs/version_0
      tbexport-train --out runs --seed 1 --lr 3e-3
      tbexport-train --out runs --resume runs/lightning_logs/version_0/checkpoints/last.ckpt
    """
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    from .train import train  # deferred: importing Lightning takes seconds

    if out is None:
        found = checkpoint_run(resume) if resume is not None else None
        out = found[0] if found else Path(".")
    started = time.perf_counter()
    try:
        result = train(
            out,
            max_epochs=max_epochs,
            seed=seed,
            lr=lr,
            batch_size=batch_size,
            accelerator=accelerator,
            resume=resume,
            stop_at_step=stop_at_step,
        )
    except MisconfigurationException as error:  # e.g. --accelerator gpu without one
        raise click.ClickException(str(error)) from error
    elapsed = time.perf_counter() - started
    state = "interrupted" if result.interrupted else "finished"
    click.echo(f"\nTraining {state} on {result.device} in {elapsed:.0f} s.")
    click.echo(f"TensorBoard logs: {result.log_dir}")
    if result.last_checkpoint:
        click.echo(f"Last checkpoint:  {result.last_checkpoint}")
    click.echo(f"Export them:      tbexport {result.log_dir} -o {Path(result.log_dir).name}.xlsx")


if __name__ == "__main__":
    main()
