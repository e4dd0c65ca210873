"""The ``tbexport`` command: parse options, call the public API, report."""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import click
from tqdm import tqdm

from tbexport import __version__
from tbexport.exceptions import InvalidOptionError, TbexportError
from tbexport.export import ExportResult, export
from tbexport.load import load_scalars
from tbexport.model import Corruption, ScalarData
from tbexport.options import (
    BANDS,
    LAYOUTS,
    PLOT_FORMATS,
    X_AXES,
    FigureOptions,
    OutputOptions,
    ReadOptions,
    ShapeOptions,
)
from tbexport.reading.discover import readable_name
from tbexport.results import AGGREGATIONS
from tbexport.shaping import LIST_COLUMNS, REDUCTIONS, TIME_MODES, summarize
from tbexport.writing.formats import FORMATS, RESULTS_FORMATS

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
FORMAT_NAMES = ("xlsx", "mat", "csv", "md", "tex", "tfevents")
# The API's parameters as this command's flags, for error messages (see
# tbexport.exceptions.option).
FLAGS = {
    "output": "-o",
    "format": "--format",
    "tags": "--tags",
    "ignore_case": "--ignore-case",
    "layout": "--layout",
    "wide": "--wide",
    "reduce": "--reduce",
    "align": "--align",
    "min_runs": "--min-runs",
    "smooth": "--smooth",
    "name_by": "--name-by",
    "time": "--time",
    "charts": "--charts",
    "matlab_script": "--matlab-script",
    "results": "--results",
    "group_by": "--group-by",
    "digits": "--digits",
    "plot": "--plot",
    "plot_dir": "--plot-dir",
    "x": "--x",
    "log_y": "--log-y",
    "band": "--band",
    "figsize": "--figsize",
    "cols": "--cols",
    "dpi": "--dpi",
    "plot_format": "--plot-format",
    "force": "--force",
    "csv_safe": "--csv-safe",
    "keep_duplicates": "--keep-duplicates",
    "strict": "--strict",
    "jobs": "--jobs",
}


def _figsize(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        width, height = (float(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"give W,H in inches (e.g. 8,6), not {value!r}") from None
    if not (0 < width <= 200 and 0 < height <= 200):
        raise click.BadParameter(f"inches from 0 to 200, not {value!r}")
    return width, height


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    metavar="OUT",
    help="Output file; its suffix picks the format (.xlsx, .mat, .csv; .md, .tex with "
    "--results). A name ending in / is a directory of TensorBoard runs (--format "
    "tfevents).  [default: named after the input, in the current directory]",
)
@click.option(
    "-f",
    "--format",
    "format_name",
    type=click.Choice(FORMAT_NAMES),
    help="The format, where -o's suffix does not say it; tfevents writes each run (or "
    "each --reduce statistic) as a TensorBoard run in the directory -o names.",
)
@click.option("--mat", "mat_flag", is_flag=True, help="Write MATLAB .mat (when -o is omitted).")
@click.option("--csv", "csv_flag", is_flag=True, help="Write CSV (when -o is omitted).")
@click.option(
    "--xlsx",
    "xlsx_flag",
    is_flag=True,
    help="Write Excel .xlsx (the default when -o is omitted).",
)
@click.option(
    "-t",
    "--tags",
    multiple=True,
    metavar="GLOB",
    help="Only tags matching this glob pattern (repeatable), e.g. 'val_*'.",
)
@click.option(
    "-i",
    "--ignore-case",
    is_flag=True,
    help="--tags patterns match whatever the case (val_* matches Val_Loss).",
)
@click.option(
    "--layout",
    type=click.Choice(LAYOUTS),
    default=None,
    help="long: one row per point (a run column for several runs); wide: one "
    "column per run, rows joined on step.  [default: long]",
)
@click.option("--wide", is_flag=True, help="CSV: one row per (run, step), one column per tag.")
@click.option(
    "--reduce",
    metavar="STATS",
    help=f"Aggregate across runs per tag and step; comma-separated from {','.join(REDUCTIONS)}.",
)
@click.option(
    "--align",
    default=None,
    metavar="steps|bins:N|grid:STEP",
    help="--reduce on common steps: as logged, N equal-width step bins per tag (each "
    "run averaged per bin; a row carries the bin's centre step), or each run "
    "interpolated onto the multiples of STEP within its own steps.  [default: steps]",
)
@click.option(
    "--min-runs",
    type=click.IntRange(min=1),
    default=None,
    metavar="K",
    help="--reduce: drop the steps fewer than K runs have a value at.  [default: 1]",
)
@click.option(
    "--smooth",
    type=click.FloatRange(0, 1, max_open=True),
    metavar="W",
    help="Add value_smoothed: TensorBoard's smoothing with weight W "
    "(0 <= W < 1; TensorBoard's default is 0.6).",
)
@click.option(
    "--name-by",
    default=None,
    metavar="dir|hparam:KEY",
    help="Label runs by directory or by a hyperparameter.  [default: dir]",
)
@click.option(
    "--time",
    "time",
    type=click.Choice(TIME_MODES),
    default=None,
    help="Time column: unix seconds, datetime (Excel dates, ISO 8601, datenum), "
    "or relative: seconds since the run's first exported point.  [default: unix]",
)
@click.option("--charts", is_flag=True, help="Excel: a native line chart on each tag sheet.")
@click.option(
    "--matlab-script",
    is_flag=True,
    help="MATLAB: also write a .m script that loads the .mat and plots every tag.",
)
@click.option(
    "--results",
    metavar="METRIC:AGG[,...]",
    help="Write the results table instead of the points (.csv, .md, .tex; in .xlsx a "
    f"first sheet): one row per run, each METRIC reduced by AGG ({', '.join(AGGREGATIONS)}"
    "; max and min add the step). METRIC:AGG:max|min says which is best (bold in .md, .tex).",
)
@click.option(
    "--group-by",
    metavar="hparam:KEY[,...]",
    help="--results: one row per group of runs sharing these hyperparameters (seeds "
    "varied), each result as mean and std over the group, with n.",
)
@click.option(
    "--digits",
    type=click.IntRange(1, 17),
    metavar="N",
    help="--results in .md or .tex: significant digits of the numbers.  [default: 4]",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Draw one panel per tag to FILE (.png, .pdf or .svg).",
)
@click.option(
    "--plot-dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Draw one figure per tag into DIR (PNG, or as --plot-format says).",
)
@click.option(
    "--x",
    type=click.Choice(X_AXES),
    default=None,
    help="x axis of plots: step, wall_time (UTC dates) or relative: time since the run's "
    "first point, in seconds, minutes, hours or days as the longest run suits (the axis "
    "says which; --time relative is always seconds).  [default: step]",
)
@click.option(
    "--log-y",
    is_flag=True,
    help="Plots: logarithmic y axis (values <= 0 left out, with a note).",
)
@click.option(
    "--band",
    type=click.Choice(BANDS),
    help="Plots of --reduce: shade mean ± std, or min to max.  [default: std]",
)
@click.option(
    "--figsize",
    callback=_figsize,
    metavar="W,H",
    help="Plots: the whole figure's size in inches (e.g. 8,6).  [default: 4.2 x 3.2 a panel]",
)
@click.option("--cols", type=click.IntRange(min=1), metavar="N", help="Plots: panels per row.")
@click.option(
    "--dpi",
    type=click.IntRange(10, 1200),
    metavar="N",
    help="Plots: pixels per inch of a PNG.  [default: 120]",
)
@click.option(
    "--plot-format",
    type=click.Choice([suffix.lstrip(".") for suffix in PLOT_FORMATS]),
    help="--plot-dir: the figures' format.  [default: png]",
)
@click.option(
    "--csv-safe",
    is_flag=True,
    help="CSV: prefix ' to run and tag names starting with = + - @, which a spreadsheet "
    "would run as formulas (numbers are never changed).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace outputs that are read-only (refused otherwise, as cp refuses without -f).",
)
@click.option(
    "--keep-duplicates",
    is_flag=True,
    help="Keep every point; by default a resumed run's points replace the earlier "
    "ones at the same or later steps, as TensorBoard shows them.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Fail on a corrupt record instead of skipping it and reporting it.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    metavar="N",
    default=None,
    help="Threads to read on (small files: C threads read ahead; big ones: a run per"
    " thread) and to list directories on; never more than the files, nor 8 per core."
    "  [default: all cores]",
)
@click.option(
    "--no-verify",
    is_flag=True,
    help="Skip the CRC checks of records (damage may then go unnoticed).",
)
@click.option(
    "-l",
    "--list",
    "list_only",
    is_flag=True,
    help="List runs, hyperparameters, tags, point counts and step ranges; write nothing.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line.")
@click.version_option(__version__, "-V", "--version", prog_name="tbexport")
def cli(
    paths: tuple[Path, ...],
    output: str | None,
    format_name: str | None,
    xlsx_flag: bool,
    mat_flag: bool,
    csv_flag: bool,
    list_only: bool,
    quiet: bool,
    tags: tuple[str, ...],
    ignore_case: bool,
    no_verify: bool,
    keep_duplicates: bool,
    strict: bool,
    jobs: int | None,
    layout: Literal["long", "wide"] | None,
    wide: bool,
    reduce: str | None,
    align: str | None,
    min_runs: int | None,
    smooth: float | None,
    name_by: str | None,
    time: Literal["unix", "datetime", "relative"] | None,
    charts: bool,
    matlab_script: bool,
    results: str | None,
    group_by: str | None,
    digits: int | None,
    plot: Path | None,
    plot_dir: Path | None,
    x: Literal["step", "wall_time", "relative"] | None,
    log_y: bool,
    band: Literal["std", "minmax"] | None,
    figsize: tuple[float, float] | None,
    cols: int | None,
    dpi: int | None,
    plot_format: str | None,
    csv_safe: bool,
    force: bool,
) -> None:
    """Export every TensorBoard scalar under PATHS — all points, exactly as logged.

    PATHS are event files, run directories (lightning_logs/version_0) or whole
    trees (lightning_logs). Excel gets index, summary and hparams sheets and one
    sheet per tag; MATLAB one struct per tag (step, wall_time, value); CSV the long
    table run, tag, step, wall_time, value.

    \b
    Examples:
      tbexport lightning_logs/version_0 -o losses.xlsx
      tbexport lightning_logs/version_0 --mat --matlab-script   # version_0.mat + .m
      tbexport lightning_logs -o all.csv --tags 'val_*'
      tbexport lightning_logs -o sweep.xlsx --layout wide --charts --smooth 0.6
      tbexport lightning_logs -o stats.xlsx --reduce mean,std,count
      tbexport lightning_logs --plot curves.png --smooth 0.6 --name-by hparam:lr
      tbexport lightning_logs --results val_acc:max,val_loss:min -o table.tex
      tbexport lightning_logs --results val_acc:max --group-by hparam:lr -o table.md
      tbexport lightning_logs --reduce mean,std --align bins:100 -o stats/
      tbexport lightning_logs --list
    """
    ctx = click.get_current_context()
    with _usage_errors(ctx):  # (as click's own checks of the values: before the rest)
        read = ReadOptions(
            tags=tags or None,
            ignore_case=ignore_case,
            keep_duplicates=keep_duplicates,
            strict=strict,
            verify=not no_verify,
            jobs=jobs,
        )
        shape = ShapeOptions(
            reduce=reduce,
            align=align,
            min_runs=min_runs,
            smooth=smooth,
            time=time,
            name_by=name_by,
        )
        table = OutputOptions(
            layout=layout,
            wide=wide,
            charts=charts,
            matlab_script=matlab_script,
            results=results,
            group_by=group_by,
            digits=digits,
            csv_safe=csv_safe,
            force=force,
        )
    format = _choose_format(output, format_name, xlsx=xlsx_flag, mat=mat_flag, csv=csv_flag)
    if list_only:
        _check_list_only(ctx)
    with _usage_errors(ctx):
        figure = FigureOptions(
            plot=plot,
            plot_dir=plot_dir,
            x=x,
            log_y=log_y,
            band=band,
            figsize=figsize,
            cols=cols,
            dpi=dpi,
            format=plot_format,
        )
        plot_only = figure.figures and output is None and format is None
        table = dataclasses.replace(table, format=format, write_table=not plot_only)
        with (
            _progress(quiet) as (progress, progress_total),
            _progress(quiet or not figure.figures, "drawing", "panel") as drawing,
        ):
            if list_only:
                data = load_scalars(
                    list(paths),
                    **read.keywords(),
                    progress=progress,
                    progress_total=progress_total,
                )
            else:
                result = export(
                    list(paths),
                    output,
                    read=read,
                    shape=shape,
                    write=table,
                    figure=figure,
                    progress=progress,
                    progress_total=progress_total,
                    figure_progress=drawing[0],
                    figure_progress_total=drawing[1],
                )
    if list_only:
        try:
            _list(data, filtered=bool(tags))
        except BrokenPipeError:  # (--list | head: the reader has what it wanted)
            _stdout_to_devnull()
        _report_problems(data.corruptions, data.truncated, data.notes)
        return
    _report_problems(result.corruptions, result.truncated, result.notes)
    if not quiet:
        click.echo(shown(_summary(result)), err=True)


@contextmanager
def _usage_errors(ctx: click.Context) -> Iterator[None]:
    """Errors as the command reports them: a value an option's check refuses as click
    reports a bad value (``Invalid value for '--align': ...``), options that do not go
    together as a usage error (both exit 2), any other error in one line (exit 1)."""
    try:
        yield
    except InvalidOptionError as error:
        message = shown(error.worded(FLAGS))
        param = next((p for p in ctx.command.params if p.name == error.parameter), None)
        if param is not None:
            raise click.BadParameter(message, ctx=ctx, param=param) from error
        raise click.UsageError(message) from error
    except TbexportError as error:
        raise click.ClickException(shown(error.worded(FLAGS))) from error


# What --list reads with; every other option shapes or writes an output it does not write.
_LIST_OPTIONS = {
    "paths",
    "list_only",
    "tags",
    "ignore_case",
    "keep_duplicates",
    "strict",
    "jobs",
    "no_verify",
    "quiet",
}


def _check_list_only(ctx: click.Context) -> None:
    given = [
        param.opts[-1]
        for param in ctx.command.params
        if param.name not in _LIST_OPTIONS
        and param.name is not None
        and ctx.get_parameter_source(param.name) == click.core.ParameterSource.COMMANDLINE
    ]
    if given:
        raise click.UsageError(f"--list writes nothing: {', '.join(given)} would be ignored")


def _choose_format(output: str | None, format_name: str | None, **flags: bool) -> str | None:
    """The format --format, --xlsx, --mat or --csv asks for (at most one of them), if any;
    ``tfevents`` for an output ending in ``/``."""
    given = [f"--{name}" for name, on in flags.items() if on]
    given += [f"--format {format_name}"] if format_name else []
    if len(given) > 1:
        raise click.UsageError(f"choose one format, not {' and '.join(given)}")
    directory = output is not None and output.endswith(("/", os.sep))
    if not given:
        return ".tfevents" if directory else None
    flag = given[0]
    wanted = "." + (format_name or flag[2:])
    suffix = Path(output).suffix if output is not None else ""
    if wanted == ".tfevents" and suffix.lower() in (".xlsx", ".mat", ".csv", ".md", ".tex"):
        raise click.UsageError(f"{flag} conflicts with output suffix {suffix!r}")
    if wanted == ".tfevents" or not (directory or suffix):
        return wanted
    if directory:
        raise click.UsageError(f"{flag} conflicts with output {output!r}, a directory")
    if suffix.lower() not in (*FORMATS, *RESULTS_FORMATS):  # (a suffix of no format: yours)
        return wanted
    if suffix.lower() != wanted:
        raise click.UsageError(f"{flag} conflicts with output suffix {suffix!r}")
    return wanted


@contextmanager
def _progress(quiet: bool, desc: str = "reading", unit: str = "B") -> Iterator[tuple[Any, Any]]:
    """A progress bar that appears only for work lasting over half a second, and only
    on a terminal: its update, and what adds to its total (the reading gives it once
    it has walked, in bytes; each figure its panels)."""
    if quiet:
        yield None, None
        return
    bar = tqdm(
        unit=unit,
        unit_scale=unit == "B",
        desc=desc,
        delay=0.5,
        file=sys.stderr,
        leave=False,
        disable=None,  # no bar when stderr is not a terminal (a log file, a batch job)
    )

    def add_total(total: int) -> None:
        bar.total = (bar.total or 0) + total

    try:
        yield bar.update, add_total
    finally:
        bar.close()


def _list(data: ScalarData, filtered: bool) -> None:
    stats = summarize(data.frame)[LIST_COLUMNS]
    # each run's rows as plain tuples, split once (selecting and iterating each run's
    # rows in pandas took seconds for 3,000 runs)
    columns = ["tag", "points", "first_step", "last_step"]
    by_run: dict[str, list[tuple[Any, ...]]] = {}
    for run_name, *row in zip(stats["run"], *(stats[c].tolist() for c in columns), strict=True):
        by_run.setdefault(run_name, []).append(tuple(row))
    for run in data.runs:
        rows = by_run.get(run.name, [])
        if filtered and not rows:
            continue  # none of the tags asked for
        files = len(run.files)
        source = (
            "CSVLogger metrics.csv"
            if run.files[0].name == "metrics.csv"
            else f"{files} event file{'s' if files != 1 else ''}"
        )
        click.echo(shown(f"{run.name}  ({source}, {len(rows)} tag{'s' if len(rows) != 1 else ''})"))
        hparams = data.hparams.get(run.name)
        if hparams:
            click.echo(shown("  hparams: " + ", ".join(f"{k}={v}" for k, v in hparams.items())))
        tags = [shown(tag) for tag, *_ in rows]
        width = max((len(tag) for tag in tags), default=0)
        for tag, (_, count, first_step, last_step) in zip(tags, rows, strict=True):
            points = "point" if count == 1 else "points"
            click.echo(
                f"  {tag:<{width}}  {count:>9,} {points:<6}  steps {first_step}..{last_step}"
            )


# Characters that would act on a terminal instead of showing: the C0 and C1 controls
# (escape sequences clear the screen, set the window's title, colour) and the marks
# that reorder text (a tag could show as another). Written as Python writes them.
_CONTROLS = [*range(0x20), *range(0x7F, 0xA0)]
_REORDERING = [0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_HIDDEN = {c: repr(chr(c))[1:-1] for c in [*_CONTROLS, *_REORDERING]}


def shown(text: str) -> str:
    """``text`` as printed for a person: controls and reordering marks as escapes
    (``\\x1b``, ``\\n``, ``\\u202e``), an undecodable byte of a path as its run name
    shows it (``\\xff``)."""
    return readable_name(text.translate(_HIDDEN))


def _report_problems(
    corruptions: list[Corruption], truncated: dict[str, int], notes: list[str]
) -> None:
    for corruption in corruptions:
        click.echo(shown(f"warning: {corruption}"), err=True)
    for path, size in truncated.items():
        click.echo(shown(f"note: {path}: incomplete last record ({size} bytes) ignored"), err=True)
    for note in notes:
        click.echo(shown(f"note: {note}"), err=True)


def _count(n: int, thing: str) -> str:
    """``1 point``, ``1,455 points``."""
    return f"{n:,} {thing}{'' if n == 1 else 's'}"


def _summary(result: ExportResult) -> str:
    written = [str(result.output)] if result.output is not None else []
    if result.plots:
        shown = [str(p) for p in result.plots[:3]]
        more = len(result.plots) - len(shown)
        written += shown + ([f"{more} more figure{'s' if more != 1 else ''}"] if more > 0 else [])
    runs = _count(result.runs, "run") + ","
    if result.statistics:  # (a comma list of its own: the rest after a semicolon)
        runs = f"{_count(result.runs, 'run')} reduced to {', '.join(result.statistics)};"
    text = (
        f"wrote {', '.join(written)}: {runs} "
        f"{_count(result.tags, 'tag')}, {_count(result.points, 'point')} "
        f"from {_count(result.files, 'event file')}"
    )
    if result.results is not None:
        rows = _count(result.runs, "run")
        rows += f" in {_count(result.groups, 'group')}" if result.groups is not None else ""
        if result.output is not None and result.output.suffix.lower() == ".xlsx":
            text += f"; a results sheet of {rows}"
        else:  # the table alone
            text = (
                f"wrote {', '.join(written)}: the results of {rows}, from "
                f"{_count(result.points, 'point')} of {_count(result.tags, 'tag')} in "
                f"{_count(result.files, 'event file')}"
            )
    stretches = [c for c in result.corruptions if c.unit == "byte"]
    if stretches:
        skipped = sum(c.skipped for c in stretches)
        count = len(stretches)
        text += f"; skipped {count} damaged stretch{'es' if count != 1 else ''}"
        text += f" ({_count(skipped, 'byte')})"
    lines = sum(c.unit == "line" for c in result.corruptions)
    if lines:  # (rows of a CSVLogger metrics.csv)
        text += f"; skipped {_count(lines, 'unreadable row')}"
    unreadable = sum(c.unit == "file" for c in result.corruptions)
    if unreadable:
        text += f"; skipped {_count(unreadable, 'unreadable file')}"
    return text


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so that the exit's flush meets no closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main() -> None:
    """Console-script entry point."""
    # Ctrl-C and SIGTERM (kill, a batch scheduler's time limit) end an export quietly
    # with 128 + the signal (130, 143), as shells report them: the temporary file is
    # removed and an earlier output left as it was.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, functools.partial(_terminated, os.getpid()))
    cli(prog_name="tbexport")


def _terminated(main_pid: int, signum: int, frame: object) -> None:
    if os.getpid() != main_pid:  # a forked reader process: end as SIGTERM ends it
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise SystemExit(128 + signum)


__all__ = ["FLAGS", "FORMAT_NAMES", "cli", "main", "shown"]
