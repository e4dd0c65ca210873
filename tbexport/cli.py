"""The ``tbexport`` command: parse options, call the public API, report."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from . import __version__
from .discover import find_runs
from .exceptions import TbexportError
from .export import ExportResult, export
from .load import ScalarData, load_scalars
from .records import Corruption
from .reshape import tag_stats
from .write import FORMATS

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}
FORMAT_FLAGS = {"mat": ".mat", "csv": ".csv", "xlsx": ".xlsx"}


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file; its suffix picks the format (.xlsx, .mat, .csv). "
    "Default: named after the input, in the current directory.",
)
@click.option(
    "--mat", "format_flag", flag_value="mat", help="Write MATLAB .mat (when -o is omitted)."
)
@click.option("--csv", "format_flag", flag_value="csv", help="Write CSV (when -o is omitted).")
@click.option(
    "--xlsx",
    "format_flag",
    flag_value="xlsx",
    help="Write Excel .xlsx (the default when -o is omitted).",
)
@click.option(
    "-t",
    "--tags",
    "tags",
    multiple=True,
    metavar="GLOB",
    help="Only tags matching this glob pattern (repeatable), e.g. 'val_*'.",
)
@click.option("--wide", is_flag=True, help="CSV only: one row per (run, step), one column per tag.")
@click.option(
    "--keep-duplicates",
    is_flag=True,
    help="Keep every point; by default a resumed run's points replace the "
    "earlier ones at the same or later steps, as TensorBoard shows them.",
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
    default=None,
    help="Processes reading event files in parallel.  [default: all cores]",
)
@click.option(
    "--no-verify",
    is_flag=True,
    help="Skip the CRC checks of records (faster; damage may then go unnoticed).",
)
@click.option(
    "-l",
    "--list",
    "list_only",
    is_flag=True,
    help="List runs, tags, point counts and step ranges; write nothing.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line.")
@click.version_option(__version__, "-V", "--version", prog_name="tbexport")
def cli(
    paths: tuple[Path, ...],
    output: Path | None,
    format_flag: str | None,
    wide: bool,
    list_only: bool,
    quiet: bool,
    tags: tuple[str, ...],
    no_verify: bool,
    **read_options: Any,
) -> None:
    """Export every TensorBoard scalar under PATHS — all points, exactly as logged.

    PATHS are event files, run directories (lightning_logs/version_0) or whole
    trees (lightning_logs). Excel gets an 'index' sheet and one sheet per tag;
    MATLAB one struct per tag (step, wall_time, value); CSV the long table
    run, tag, step, wall_time, value.

    \b
    Examples:
      tbexport lightning_logs/version_0 -o losses.xlsx
      tbexport lightning_logs/version_0 --mat        # writes version_0.mat
      tbexport lightning_logs -o all.csv --tags 'val_*'
      tbexport lightning_logs --list
    """
    format = _choose_format(output, format_flag)
    options = {"tags": tags or None, "verify": not no_verify, **read_options}
    try:
        with _progress(paths, quiet) as progress:
            if list_only:
                data = load_scalars(list(paths), progress=progress, **options)
            else:
                result = export(list(paths), output, format=format, wide=wide, progress=progress,
                                **options)  # fmt: skip
    except TbexportError as error:
        raise click.ClickException(str(error)) from error
    if list_only:
        _list(data)
        _report_problems(data.corruptions, data.truncated)
        return
    _report_problems(result.corruptions, result.truncated)
    if not quiet:
        click.echo(_summary(result), err=True)


def _choose_format(output: Path | None, flag: str | None) -> str | None:
    if flag is None:
        return None
    wanted = FORMAT_FLAGS[flag]
    if output is not None and output.suffix and output.suffix.lower() != wanted:
        raise click.UsageError(f"--{flag} conflicts with output suffix {output.suffix!r}")
    return wanted


@contextmanager
def _progress(paths: tuple[Path, ...], quiet: bool) -> Iterator[Any]:
    """A byte-based progress bar that appears only for reads lasting over half a second."""
    if quiet:
        yield None
        return
    try:
        total = sum(f.stat().st_size for run in find_runs(list(paths)) for f in run.files)
    except TbexportError:
        total = None  # let the export raise the real error
    bar = tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        desc="reading",
        delay=0.5,
        file=sys.stderr,
        leave=False,
    )
    try:
        yield bar.update
    finally:
        bar.close()


def _list(data: ScalarData) -> None:
    stats = tag_stats(data.frame)
    for run in data.runs:
        rows = stats[stats["run"] == run.name]
        files = len(run.files)
        click.echo(f"{run.name}  ({files} event file{'s' if files != 1 else ''}, {len(rows)} tags)")
        width = max((len(t) for t in rows["tag"]), default=0)
        for row in rows.itertuples(index=False):
            click.echo(
                f"  {row.tag:<{width}}  {row.points:>9,} points  "
                f"steps {row.first_step}..{row.last_step}"
            )


def _report_problems(corruptions: list[Corruption], truncated: dict[str, int]) -> None:
    for corruption in corruptions:
        click.echo(f"warning: {corruption}", err=True)
    for path, size in truncated.items():
        click.echo(f"note: {path}: incomplete last record ({size} bytes) ignored", err=True)


def _summary(result: ExportResult) -> str:
    text = (
        f"wrote {result.output}: {result.runs} run{'s' if result.runs != 1 else ''}, "
        f"{result.tags} tag{'s' if result.tags != 1 else ''}, {result.points:,} points "
        f"from {result.files} event file{'s' if result.files != 1 else ''}"
    )
    if result.corruptions:
        skipped = sum(c.skipped for c in result.corruptions)
        count = len(result.corruptions)
        text += f"; skipped {count} damaged stretch{'es' if count != 1 else ''} ({skipped} bytes)"
    return text


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="tbexport")


__all__ = ["FORMATS", "cli", "main"]
