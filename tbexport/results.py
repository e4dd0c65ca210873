"""The results table of a paper: each run's final or best metrics, optionally averaged over seeds.

A metric is asked for as ``METRIC:AGG`` (``val_acc:max``) or ``METRIC:AGG:GOAL``
(``val_loss:last:min``), where ``AGG`` reduces the run's points of the tag
``METRIC`` to one number:

``last`` / ``first``
    the value of the last / first point logged (after a resume, the points that
    replaced the earlier ones: the run as TensorBoard shows it);
``max`` / ``min``
    the largest / smallest value, with the step where it was first reached in a
    column of its own (``val_acc:max@step``);
``mean``
    the mean of the run's points.

NaN points are left out of ``max``, ``min`` and ``mean`` (±inf are values).
``GOAL`` (``max`` or ``min``) says which value is best, for the bold entry of the
Markdown and LaTeX tables; without it, ``:max`` and ``:min`` are their own goal,
and other aggregations follow the metric's name (``loss``, ``err``, ... are
minimised; ``acc``, ``f1``, ... maximised; anything else has no best).

Per run, the table has ``run``, the run's hyperparameters, then one column per
result. Grouped by hyperparameters (``group_by``), it has the group's keys, ``n``
(its runs), then ``<result> mean`` and ``<result> std`` (the sample standard
deviation over the group's runs; NaN for a group of one) for each result, and
``<result> n`` where some run of a group lacks that metric.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from tbexport.exceptions import InvalidOptionError, NoScalarsError
from tbexport.load import Paths, load_scalars
from tbexport.reading.discover import natural_key

__all__ = [
    "AGGREGATIONS",
    "GOALS",
    "Metric",
    "ResultsTable",
    "check_group_by",
    "parse_metrics",
    "results",
    "results_table",
]

AGGREGATIONS = ("last", "first", "max", "min", "mean")
GOALS = ("max", "min")
Goal = Literal["max", "min"]

# Words in a metric's name that say which way is better (matched as parts of the
# name split at non-letters, so "val_loss" and "train/err_top1" match, "lossless" not).
_LOWER_IS_BETTER = {"loss", "err", "error", "mse", "mae", "rmse", "nll", "ppl", "perplexity"}
_LOWER_IS_BETTER |= {"wer", "cer", "fid", "regret", "time", "latency"}
_HIGHER_IS_BETTER = {"acc", "accuracy", "f1", "precision", "recall", "auc", "auroc", "ap"}
_HIGHER_IS_BETTER |= {"map", "iou", "miou", "dice", "bleu", "rouge", "r2", "score", "reward"}


@dataclass(frozen=True)
class Metric:
    """One requested result: a tag, how its points become one number, and which way is best."""

    tag: str
    aggregation: str
    goal: Goal | None = None  # None: from the aggregation or the tag's name, if they say

    @property
    def column(self) -> str:
        """The result's column: ``val_acc:max``."""
        return f"{self.tag}:{self.aggregation}"

    @property
    def step_column(self) -> str | None:
        """The column of the step where ``max``/``min`` was reached (``val_acc:max@step``)."""
        return f"{self.column}@step" if self.aggregation in ("max", "min") else None

    @property
    def best(self) -> Goal | None:
        """Whether the largest or the smallest value is best; None when nothing says."""
        if self.goal is not None:
            return self.goal
        if self.aggregation in ("max", "min"):
            return "max" if self.aggregation == "max" else "min"
        words = set("".join(c if c.isalnum() else " " for c in self.tag.lower()).split())
        words |= {w.rstrip("0123456789") for w in words}  # top1 -> top, acc1 -> acc
        if words & _LOWER_IS_BETTER:
            return "min"
        if words & _HIGHER_IS_BETTER:
            return "max"
        return None


@dataclass
class ResultsTable:
    """A results table and what its renderers need to know about its columns."""

    frame: pd.DataFrame
    metrics: list[Metric]
    keys: list[str]  # the columns that name a row: run (and dir), hparams or group keys
    grouped: bool = False
    notes: list[str] = field(default_factory=list)
    # per result column, the rows that hold it (a run that logged the tag; a group with
    # such a run): a NaN there is a NaN result, elsewhere an empty cell
    logged: Mapping[str, np.ndarray] = field(default_factory=dict)


def parse_metrics(metrics: str | Sequence[str]) -> list[Metric]:
    """``"val_acc:max,val_loss:min"`` (or a list of such items) as :class:`Metric` objects.

    Raises :class:`InvalidOptionError` for an item without a known aggregation.
    """
    items = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    parsed = [_parse_metric(item.strip()) for item in items if item.strip()]
    if not parsed:
        raise InvalidOptionError("no metric given; use METRIC:AGG, e.g. val_acc:max")
    seen: set[str] = set()
    for metric in parsed:
        if metric.column in seen:
            raise InvalidOptionError(f"{metric.column} is asked for twice")
        seen.add(metric.column)
    return parsed


def _parse_metric(item: str) -> Metric:
    # From the right: a tag may itself hold ':' (train:loss:min is the tag train:loss).
    parts = item.rsplit(":", 2)
    if len(parts) == 3 and parts[1] in AGGREGATIONS and parts[2] in GOALS and parts[0]:
        goal: Goal = "max" if parts[2] == "max" else "min"
        return Metric(parts[0], parts[1], goal)
    tag, _, aggregation = item.rpartition(":")
    if tag and aggregation in AGGREGATIONS:
        return Metric(tag, aggregation)
    raise InvalidOptionError(
        f"cannot read {item!r} as METRIC:AGG[:max|min]; AGG is one of {', '.join(AGGREGATIONS)}"
        " (e.g. val_acc:max)"
    )


def check_group_by(group_by: str | Sequence[str]) -> list[str]:
    """The hyperparameter names ``group_by`` asks for (``hparam:seed`` or ``seed``)."""
    items = group_by.split(",") if isinstance(group_by, str) else list(group_by)
    keys = [item.strip().removeprefix("hparam:") for item in items if item.strip()]
    if not keys or any(not key for key in keys):
        raise InvalidOptionError(
            f"group by hparam:KEY[,hparam:KEY...] (e.g. hparam:lr), not {group_by!r}"
        )
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise InvalidOptionError(f"group by each hyperparameter once, not {', '.join(twice)} twice")
    return keys


def results(
    source: Paths | pd.DataFrame,
    metrics: str | Sequence[str],
    *,
    group_by: str | Sequence[str] | None = None,
    hparams: bool | pd.DataFrame = True,
) -> pd.DataFrame:
    """The results table of the runs under ``source`` (paths, or a frame as read).

    ``metrics``: ``"val_acc:max,val_loss:min,test_acc:last"`` or a list of such items
    (see the module's documentation for the aggregations). One row per run: ``run``,
    its hyperparameters (``hparams=False`` leaves them out; for a frame, pass
    ``hparams=tbexport.read_hparams(paths)``), then the results. ``group_by``
    (``["hparam:lr"]``): one row per group of runs sharing those hyperparameters,
    each result as ``mean`` and ``std`` over the group's runs, with ``n``.
    """
    metric_list = parse_metrics(metrics)
    keys = check_group_by(group_by) if group_by is not None else None
    if isinstance(source, pd.DataFrame):
        frame = source
        table = hparams if isinstance(hparams, pd.DataFrame) else None
        if keys and table is None:
            raise InvalidOptionError(
                "group_by needs the runs' hyperparameters: pass hparams=tbexport.read_hparams(...)"
            )
        by_run: Mapping[str, Mapping[str, object]] = (
            _hparams_by_run(table) if table is not None else {}
        )
    else:
        data = load_scalars(source)
        frame, by_run = data.frame, data.hparams
    if frame.empty:
        raise NoScalarsError("no scalar data to make a results table of")
    # (grouping needs the hyperparameters even when their columns are left out)
    shown = by_run if hparams is not False or keys else {}
    return results_table(frame, metric_list, shown, group_by=keys).frame


def _hparams_by_run(table: pd.DataFrame) -> dict[str, dict[str, object]]:
    columns = [c for c in table.columns if c != "run"]
    return {
        str(row["run"]): {c: row[c] for c in columns if not _missing(row[c])}
        for _, row in table.iterrows()
    }


def results_table(
    frame: pd.DataFrame,
    metrics: Sequence[Metric],
    hparams: Mapping[str, Mapping[str, object]],
    *,
    group_by: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> ResultsTable:
    """Compute the table: per run, or per group of runs when ``group_by`` names hparams.

    ``labels`` (run -> label, from ``--name-by``) puts the label in ``run`` and the
    directory in ``dir``. A hyperparameter named like a column of the table (``run``,
    ``n``, ``val_acc:max``) is renamed ``<name> (hparam)``.
    """
    runs_column = frame["run"]
    if not isinstance(runs_column.dtype, pd.CategoricalDtype):  # (a frame built by hand)
        frame = frame.assign(run=runs_column.astype("category"), tag=frame["tag"].astype(str))
    present = set(frame["run"].unique())
    runs = [str(r) for r in frame["run"].cat.categories if r in present]
    tags = {str(t) for t in frame["tag"].unique()}
    _check_metrics_exist(metrics, tags)
    values, logged = _per_run(frame, metrics, runs)
    taken = {"run", "dir", *values.columns}
    if group_by:
        taken |= {"n", *(f"{c} {s}" for c in values.columns for s in ("mean", "std", "n"))}
    renamed = {
        run: {(f"{k} (hparam)" if k in taken else k): v for k, v in hparams.get(run, {}).items()}
        for run in runs
    }
    rows = []
    for run in runs:
        row: dict[str, object] = {"run": labels.get(run, run) if labels else run}
        if labels:
            row["dir"] = run
        row.update(renamed[run])
        rows.append(row)
    ids = pd.DataFrame(rows)
    if labels and (ids["dir"] == ids["run"]).all():
        ids = ids.drop(columns="dir")  # (no run was relabelled)
    per_run = pd.concat([ids, values], axis=1)
    notes = _missing_notes(metrics, values, logged, len(runs))
    if not group_by:
        return ResultsTable(per_run, list(metrics), list(ids.columns), notes=notes, logged=logged)
    keys = [f"{k} (hparam)" if k in taken else k for k in group_by]
    return _grouped(per_run, list(metrics), keys, renamed, runs, logged, notes)


def _check_metrics_exist(metrics: Sequence[Metric], tags: set[str]) -> None:
    for metric in metrics:
        if metric.tag not in tags:
            close = difflib.get_close_matches(metric.tag, sorted(tags), n=5, cutoff=0.0)
            raise InvalidOptionError(
                f"no run has the metric {metric.tag!r}; tags include: {', '.join(close)}"
            )


def _per_run(
    frame: pd.DataFrame, metrics: Sequence[Metric], runs: list[str]
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """One row per run (in ``runs``' order), the result columns in ``metrics``' order; and
    per result column, which runs logged its tag (a NaN result of a run that did is NaN,
    not missing)."""
    wanted = {m.tag for m in metrics}
    series: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    subset = frame[frame["tag"].isin(wanted)]
    for (run, tag), group in subset.groupby(["run", "tag"], observed=True, sort=False):
        steps = group["step"].to_numpy(np.int64)
        series[(str(run), str(tag))] = (steps, group["value"].to_numpy(np.float64))
    position = {run: i for i, run in enumerate(runs)}
    columns: dict[str, pd.Series] = {}
    logged: dict[str, np.ndarray] = {}
    for metric in metrics:
        value_column = np.full(len(runs), np.nan)
        step_column = pd.array([pd.NA] * len(runs), dtype="Int64")
        has = np.zeros(len(runs), dtype=bool)
        for (run, tag), (steps, values) in series.items():
            if tag == metric.tag:
                i = position[run]
                value_column[i], step = _aggregate(steps, values, metric.aggregation)
                has[i] = True
                if step is not None:
                    step_column[i] = step
        columns[metric.column] = pd.Series(value_column)
        logged[metric.column] = has
        if metric.step_column is not None:
            columns[metric.step_column] = pd.Series(step_column)
            logged[metric.step_column] = has
    return pd.DataFrame(columns), logged


def _aggregate(steps: np.ndarray, values: np.ndarray, aggregation: str) -> tuple[float, int | None]:
    """One run's points of one tag reduced to a number (and, for max/min, its step)."""
    if aggregation == "last":
        return float(values[-1]), None
    if aggregation == "first":
        return float(values[0]), None
    known = ~np.isnan(values)
    if not known.any():
        return math.nan, None
    if aggregation == "mean":
        return float(values[known].mean()), None
    filled = np.where(known, values, -np.inf if aggregation == "max" else np.inf)
    at = int(np.argmax(filled) if aggregation == "max" else np.argmin(filled))
    return float(values[at]), int(steps[at])


def _missing_notes(
    metrics: Sequence[Metric], values: pd.DataFrame, logged: Mapping[str, np.ndarray], runs: int
) -> list[str]:
    notes = []
    for metric in metrics:
        has = logged[metric.column]
        lacking = runs - int(has.sum())
        if lacking:
            noun = "run has" if lacking == 1 else "runs have"
            notes.append(f"{lacking} of {runs} {noun} no {metric.tag} (left empty)")
        nan = int((has & values[metric.column].isna().to_numpy()).sum())
        if nan:
            noun = "run's" if nan == 1 else "runs'"
            notes.append(f"{nan} of {runs} {noun} {metric.column} is NaN")
    return notes


def _grouped(
    per_run: pd.DataFrame,
    metrics: list[Metric],
    keys: list[str],
    hparams: Mapping[str, Mapping[str, object]],
    runs: list[str],
    logged: Mapping[str, np.ndarray],
    notes: list[str],
) -> ResultsTable:
    for key in keys:
        if not any(key in hparams.get(run, {}) for run in runs):
            known = sorted({k for run in runs for k in hparams.get(run, {})})
            raise InvalidOptionError(
                f"no run has the hyperparameter {key.removesuffix(' (hparam)')!r} to group "
                f"by; known: {', '.join(known) or 'none'}"
            )
        lacking = sum(key not in hparams.get(run, {}) for run in runs)
        if lacking:
            noun = "run has" if lacking == 1 else "runs have"
            notes.append(f"{lacking} of {len(runs)} {noun} no {key}: grouped as one, {key} empty")
    result_columns = [c for m in metrics for c in (m.column, m.step_column) if c]
    groups: dict[tuple[tuple[str, object], ...], list[int]] = {}
    for position, run in enumerate(runs):
        values = hparams.get(run, {})
        # (typed: True and 1 are equal in Python, and are two settings)
        setting = tuple((type(values.get(k)).__name__, values.get(k)) for k in keys)
        groups.setdefault(setting, []).append(position)
    rows = []
    counts: dict[str, list[int]] = {c: [] for c in result_columns}
    for group_key in _sorted_keys(list(groups)):
        members = groups[group_key]
        row: dict[str, object] = {k: v for k, (_, v) in zip(keys, group_key, strict=True)}
        row["n"] = len(members)
        for column in result_columns:
            have = [i for i in members if logged[column][i]]
            present = per_run[column].iloc[have].astype(np.float64).to_numpy()
            # a NaN result (a diverged seed) makes the group's mean NaN: not left out
            row[f"{column} mean"] = float(np.mean(present)) if len(present) else math.nan
            row[f"{column} std"] = float(np.std(present, ddof=1)) if len(present) > 1 else math.nan
            row[f"{column} n"] = len(present)
            counts[column].append(len(present))
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in result_columns:  # a count only where some group's runs lack the result
        if (frame[f"{column} n"] == frame["n"]).all():
            frame = frame.drop(columns=f"{column} n")
    logged_groups = {c: np.array(n) > 0 for c, n in counts.items()}
    return ResultsTable(frame, metrics, keys, grouped=True, notes=notes, logged=logged_groups)


def _sorted_keys(
    keys: list[tuple[tuple[str, object], ...]],
) -> list[tuple[tuple[str, object], ...]]:
    """Groups in the order of their keys: numbers by value, text naturally, missing last."""

    def key(group: tuple[Any, ...]) -> tuple[object, ...]:
        parts: list[tuple[object, ...]] = []
        for _, value in group:  # (type name, value) pairs
            if _missing(value):
                parts.append((2, ()))
            elif isinstance(value, bool | int | float):
                parts.append((0, float(value), isinstance(value, bool)))
            else:
                parts.append((1, natural_key(str(value))))
        return tuple(parts)

    return sorted(keys, key=key)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
