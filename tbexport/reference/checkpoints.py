"""Where a Lightning checkpoint's own run is (no Lightning import: the CLI asks first)."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["checkpoint_run"]


def checkpoint_run(checkpoint: Path) -> tuple[Path, int] | None:
    """``ROOT/lightning_logs/version_N/checkpoints/x.ckpt`` -> (ROOT, N), so that a resume
    logs into that run; None for a checkpoint kept anywhere else (a new version)."""
    parents = checkpoint.resolve().parents
    if len(parents) < 4 or parents[0].name != "checkpoints":
        return None
    match = re.fullmatch(r"version_(\d+)", parents[1].name)
    if not match or parents[2].name != "lightning_logs":
        return None
    return parents[3], int(match.group(1))
