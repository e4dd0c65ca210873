"""Hyperparameters per run: Lightning's ``hparams.yaml`` and the hparams plugin records."""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .decode import HParam, open_regular
from .discover import HPARAMS_FILE
from .exceptions import InvalidOptionError

__all__ = ["check_name_by", "hparams_frame", "merge_hparams", "read_hparams_yaml", "run_labels"]


@functools.cache
def _lenient_loader() -> type[Any]:
    """Safe loading that turns Python-specific tags (``!!python/...``) into plain text.

    Built on first use: most exports read no hparams.yaml, and yaml is slow to import.
    """
    import yaml

    def unknown_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)  # type: ignore[arg-type]

    class LenientLoader(yaml.SafeLoader):
        pass

    LenientLoader.add_multi_constructor("", unknown_tag)
    return LenientLoader


def read_hparams_yaml(
    run_dir: Path, exists: bool | None = None, problems: list[str] | None = None
) -> dict[str, HParam | None]:
    """``hparams.yaml`` in ``run_dir`` flattened to ``{"optimizer.lr": 0.001}``; {} if none.

    ``exists``: whether the directory's listing showed one (None: look). A key set to
    null in the file comes out as None. A file that is not a YAML mapping is left
    out, and said so in ``problems``; one that cannot be read raises OSError.
    """
    if exists is False:
        return {}
    path = run_dir / HPARAMS_FILE
    text = _regular_file_text(path)
    if text is None:
        return {}
    import yaml

    try:
        loaded = yaml.load(text, Loader=_lenient_loader())
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        _note(problems, f"{path}: not valid YAML{line}, hyperparameters left out")
        return {}
    if isinstance(loaded, dict):
        return _flatten(loaded)
    if loaded is not None:  # (an empty file holds none)
        _note(problems, f"{path}: not a mapping of names to values, left out")
    return {}


def _note(problems: list[str] | None, text: str) -> None:
    if problems is not None:
        problems.append(text)


def merge_hparams(
    from_yaml: Mapping[str, HParam | None], from_events: Mapping[str, HParam]
) -> dict[str, HParam]:
    """A run's hyperparameters: those of its ``hparams.yaml``, then those only its event
    files hold.

    Lightning writes each hyperparameter twice: as given in ``hparams.yaml``, and in
    the event file as TensorBoard's hparams plugin holds it (every number a float,
    True as 1.0, None as "None", nested keys joined with ``/``). The yaml's is kept.
    """
    merged = {key: value for key, value in from_yaml.items() if value is not None}
    for key, value in from_events.items():
        if key not in from_yaml and key.replace("/", ".") not in from_yaml:
            merged[key] = value
    return merged


def _regular_file_text(path: Path) -> str | None:
    """The text of ``path``; None where there is none (gone since the listing). Opened as
    event files are: a FIFO of that name must not block the read.

    Raises OSError where it cannot be read (no permission, not a regular file, not
    UTF-8), for the caller to report as it reports an unreadable event file.
    """
    try:
        with open(open_regular(os.fspath(path)), "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise OSError(errno.EILSEQ, f"not UTF-8 (byte {error.start})", os.fspath(path)) from error


def _flatten(mapping: Mapping[Any, Any], prefix: str = "") -> dict[str, HParam | None]:
    flat: dict[str, HParam | None] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        elif value is None or isinstance(value, bool | int | float | str):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def hparams_frame(hparams: Mapping[str, Mapping[str, HParam]]) -> pd.DataFrame:
    """One row per run (column ``run``), one column per hyperparameter (one named
    ``run`` becomes ``run (hparam)``)."""
    rows = [
        {"run": run, **{("run (hparam)" if k == "run" else k): v for k, v in values.items()}}
        for run, values in hparams.items()
    ]
    return pd.DataFrame(rows).reset_index(drop=True) if rows else pd.DataFrame(columns=["run"])


def check_name_by(name_by: str) -> None:
    """Raise :class:`InvalidOptionError` unless ``name_by`` is ``dir`` or ``hparam:KEY``."""
    if name_by != "dir" and (not name_by.startswith("hparam:") or name_by == "hparam:"):
        raise InvalidOptionError(f"use 'dir' or 'hparam:KEY' (e.g. hparam:lr), not {name_by!r}")


def run_labels(
    runs: list[str], hparams: Mapping[str, Mapping[str, HParam]], name_by: str
) -> dict[str, str]:
    """Labels for ``--name-by dir|hparam:KEY``: ``lr=0.001``, unique, the dir name if missing."""
    check_name_by(name_by)
    if name_by == "dir":
        return {run: run for run in runs}
    key = name_by[7:]
    if not any(key in hparams.get(run, {}) for run in runs):
        known = sorted({k for run in runs for k in hparams.get(run, {})})
        raise InvalidOptionError(
            f"no run has the hyperparameter {key!r}; known: {', '.join(known) or 'none'}"
        )
    labels: dict[str, str] = {}
    taken: set[str] = set()
    for run in runs:
        value = hparams.get(run, {}).get(key)
        label = f"{key}={value}" if value is not None else run
        candidate, n = label, 2
        while candidate in taken:
            candidate, n = f"{label} ({n})", n + 1
        taken.add(candidate)
        labels[run] = candidate
    return labels
