"""CSV output: the long frame as is, or the wide view with ``wide=True``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..reshape import to_wide


def write(frame: pd.DataFrame, path: Path, *, wide: bool = False) -> None:
    """Write ``frame`` as CSV (floats in shortest round-trip form, so nothing is lost)."""
    table = to_wide(frame) if wide else frame
    table.to_csv(path, index=False, lineterminator="\n")
