"""Hyperparameters per run: Lightning's ``hparams.yaml`` and the hparams plugin records."""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from tbexport.exceptions import InvalidOptionError
from tbexport.model import HParam
from tbexport.reading.discover import HPARAMS_FILE, readable_name
from tbexport.reading.source import open_file

__all__ = ["check_name_by", "hparams_frame", "merge_hparams", "read_hparams_yaml", "run_labels"]


MAX_DEPTH = 100  # nesting of an hparams.yaml, its aliases expanded
MAX_REPEATED = 100_000  # values its aliases repeat, in all
_INT64 = range(-(2**63), 2**63)


@functools.cache
def _lenient_loader() -> type[Any]:
    """Safe loading that turns Python-specific tags (``!!python/...``) into plain text,
    bounded against hostile files.

    Aliases are followed as written, but one inside the node it names (a recursive
    alias), nesting deeper than ``MAX_DEPTH`` or aliases that repeat more than
    ``MAX_REPEATED`` values (a "billion laughs" bomb) stop the load with
    :class:`_Refused` before anything is built. Integers beyond int64, and scalars
    tagged as what they are not (``!!int abc``, a date of month 13), are kept as the
    text written. Built on first use: most exports read no hparams.yaml, and yaml is
    slow to import.
    """
    import yaml
    from yaml.constructor import SafeConstructor

    def unknown_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)  # type: ignore[arg-type]

    def as_written(construct: Any) -> Any:
        """A scalar constructor that keeps the text where it cannot make the value."""

        def lenient(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
            try:
                return construct(loader, node)
            except (ValueError, KeyError, IndexError, TypeError, OverflowError):
                return loader.construct_scalar(node)

        return lenient

    def integer(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
        text = loader.construct_scalar(node)
        digits = text.replace("_", "").lstrip("+-")
        digits = (digits[2:] if digits[:2] in ("0b", "0x") else digits).lstrip("0")
        if len(digits) > 64:  # beyond int64 in any base (and costly for int() to read)
            return text
        value = SafeConstructor.construct_yaml_int(loader, node)
        return value if value in _INT64 else text

    class LenientLoader(yaml.SafeLoader):
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.depth = 0  # of the node being composed (the document's is 1)
            self.deepest = 0  # the deepest level reached by the node being composed
            self.values = 0  # composed so far, aliases expanded
            self.repeated = 0  # of them, the values aliases repeat
            self.open: set[str] = set()  # anchors whose node is being composed
            self.sizes: dict[str, tuple[int, int]] = {}  # anchor: (values, levels)

        def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            if isinstance(event, yaml.AliasEvent):
                if event.anchor in self.open:
                    raise _Refused("a recursive alias", event.start_mark)
                values, levels = self.sizes.get(event.anchor or "", (0, 0))
                self.values += values
                self.repeated += values
                if self.repeated > MAX_REPEATED:
                    raise _Refused(f"aliases repeat over {MAX_REPEATED} values", event.start_mark)
                if self.depth + levels > MAX_DEPTH:
                    raise _Refused(f"nested over {MAX_DEPTH} levels deep", event.start_mark)
                self.deepest = max(self.deepest, self.depth + levels)
                return super().compose_node(parent, index)
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _Refused(f"nested over {MAX_DEPTH} levels deep", event.start_mark)
            anchor, values, deepest = event.anchor, self.values, self.deepest
            self.values += 1
            self.deepest = self.depth
            if anchor is not None:
                self.open.add(anchor)
            node = super().compose_node(parent, index)
            if anchor is not None:
                self.open.discard(anchor)
                self.sizes[anchor] = (self.values - values, self.deepest - self.depth + 1)
            self.deepest = max(deepest, self.deepest)
            self.depth -= 1
            return node

    LenientLoader.add_multi_constructor("", unknown_tag)
    LenientLoader.add_constructor("tag:yaml.org,2002:int", integer)
    for kind in ("int", "float", "bool", "timestamp"):
        tag = f"tag:yaml.org,2002:{kind}"
        LenientLoader.add_constructor(tag, as_written(LenientLoader.yaml_constructors[tag]))
    return LenientLoader


class _Refused(Exception):
    """An hparams.yaml tbexport does not load (a recursive alias, too deep, a bomb)."""

    def __init__(self, reason: str, mark: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = mark.line + 1 if mark is not None else None


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
    except _Refused as refused:
        line = f" (line {refused.line})" if refused.line is not None else ""
        _note(problems, f"{path}: {refused.reason}{line}, hyperparameters left out")
        return {}
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
        with open_file(path) as file:
            data = file.read(0, file.size)
    except FileNotFoundError:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise OSError(errno.EILSEQ, f"not UTF-8 (byte {error.start})", os.fspath(path)) from error


def _flatten(mapping: Mapping[Any, Any], prefix: str = "") -> dict[str, HParam | None]:
    """Nested keys joined with ``.``; text that is no Unicode (a ``"\\udcff"`` escape
    makes a lone surrogate) written with backslash escapes, as undecodable names are."""
    flat: dict[str, HParam | None] = {}
    for key, value in mapping.items():
        name = readable_name(f"{prefix}{key}")
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        elif value is None or isinstance(value, bool | int | float):
            flat[name] = value
        else:  # (text, and lists, dates and the like as text)
            flat[name] = readable_name(str(value))
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
