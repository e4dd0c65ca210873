"""tbexport against tbparse and TensorBoard's EventAccumulator, in one run.

    python -m benchmarks.run            # full run (about 25 minutes on 2 cores)
    python -m benchmarks.run --quick    # 100k-point inputs, one repetition (a smoke test)
    python -m benchmarks.run --only csv # one comparison (written to results/partial.*)

Inputs are generated under benchmarks/data/ (git-ignored). Every case runs in a
fresh process; cases of one comparison alternate, and each is repeated (medians
reported). Before timing, tbexport's values are checked against tbparse's for every
point. Results go to benchmarks/results/ (markdown table, JSON, plot).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from .generate import write_run, write_sweep

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results"


@dataclass
class Case:
    """A named way of doing one job; ``command`` is a CLI or ``cases.py`` case name."""

    label: str
    command: list[str] | str
    end_to_end: bool = False  # a cases.py case timed from outside, start-up and imports included
    against: str | None = None  # the label of the case its ratio is taken to (default: the first)
    seconds: list[float] = field(default_factory=list)
    peak_mib: list[float] = field(default_factory=list)
    above_imports_mib: list[float] = field(default_factory=list)


def _run_case(case: Case, source: Path, scratch: Path) -> None:
    if isinstance(case.command, str):
        argv = [sys.executable, "-m", "benchmarks.cases", case.command, str(source), str(scratch)]
        if not case.end_to_end:  # in-process work, imports excluded
            done = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=HERE.parent)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            case.seconds.append(result["seconds"])
            case.peak_mib.append(result["peak_mib"])
            case.above_imports_mib.append(result["peak_mib"] - result["baseline_mib"])
            return
    else:
        argv = [a.replace("{in}", str(source)).replace("{out}", str(scratch)) for a in case.command]
    started = time.perf_counter()
    child = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=HERE.parent
    )
    _, status, usage = os.wait4(child.pid, 0)
    case.seconds.append(time.perf_counter() - started)  # end to end: start-up included
    case.peak_mib.append(usage.ru_maxrss / 1024)
    if status != 0:
        error = child.stderr.read().decode(errors="replace") if child.stderr else ""
        raise RuntimeError(f"{argv} failed: {error}")


SCALING_REPEAT = 15
# each output format against the tbparse pipeline a user would write instead
EXPORT_PEERS = [
    (".xlsx", "tbparse + DataFrame.to_excel (openpyxl)", "xlsx_tbparse_pandas"),
    (".mat", "tbparse + scipy.io.savemat", "mat_tbparse_scipy"),
    (".csv", "tbparse + DataFrame.to_csv", "csv_tbparse_pandas"),
]
Section = dict[str, Any]  # one table of the results: its title, cases and ratios
ONLY: str | None = None  # --only: run just the sections whose title contains this


def compare(
    title: str,
    source: Path,
    cases: list[Case],
    repeat: int,
    scratch: Path,
    *,
    warm_up: bool = False,
) -> Section | None:
    """Run ``cases`` alternately ``repeat`` times; the first case is the reference.

    ``warm_up`` runs every case once, untimed, first (for short cases, where the
    first process after a long one is an outlier).
    """
    if ONLY and ONLY.lower() not in title.lower():
        return None
    print(f"\n## {title}", flush=True)
    if warm_up:
        for case in cases:
            _run_case(case, source, scratch)
            for measured in (case.seconds, case.peak_mib, case.above_imports_mib):
                measured.clear()
    for _ in range(repeat):
        for case in cases:
            _run_case(case, source, scratch)
            print(f"  {case.label:<40} {case.seconds[-1]:8.2f} s", flush=True)
    by_label = {c.label: c for c in cases}
    rows = []
    for c in cases:
        reference = by_label[c.against] if c.against else cases[0]
        rows.append(
            {
                "label": c.label,
                "median_s": statistics.median(c.seconds),
                "ratio": statistics.median(c.seconds) / statistics.median(reference.seconds),
                "peak_mib": max(c.peak_mib),
                "above_imports_mib": max(c.above_imports_mib) if c.above_imports_mib else None,
                "runs": len(c.seconds),
                "against": reference.label,
                **_pair_ratios(c, reference),
            }
        )
    return {"title": title, "rows": rows}


def _pair_ratios(case: Case, reference: Case) -> dict[str, float]:
    """Median and quartiles of this case's time over the reference's, pair by pair.

    Cases run alternately, so each pair ran within the same second or two: on a shared
    machine whose speed drifts, this says more than a ratio of two medians.
    """
    if case is reference or len(case.seconds) < 5:
        return {}
    ratios = [a / b for a, b in zip(case.seconds, reference.seconds, strict=True)]
    low, middle, high = statistics.quantiles(ratios, n=4)
    return {"pair_ratio_median": middle, "pair_ratio_q1": low, "pair_ratio_q3": high}


def check_exact(source: Path, tensors: bool) -> int:
    """tbexport's points equal tbparse's, value for value; returns the point count."""
    from tbparse import SummaryReader

    import tbexport

    ours = tbexport.read_scalars(source)
    ours["tag"] = ours["tag"].astype(str)
    ours = ours.sort_values(["tag", "step"], kind="stable")
    reader = SummaryReader(str(source))
    theirs = (reader.tensors if tensors else reader.scalars).sort_values(["tag", "step"])
    assert len(ours) == len(theirs), (len(ours), len(theirs))
    assert ours["tag"].astype(str).tolist() == theirs["tag"].tolist()
    assert np.array_equal(ours["step"].to_numpy(), theirs["step"].to_numpy())
    assert np.array_equal(ours["value"].to_numpy(), theirs["value"].to_numpy(dtype=np.float64))
    return len(ours)


def inputs(quick: bool) -> dict[str, Path]:
    steps = 2_000 if quick else 20_000
    plan: dict[str, Callable[[Path], object]] = {
        "run": lambda p: write_run(p, 50, steps),
        "run_tf2": lambda p: write_run(p, 50, steps, tensor=True),
        "sweep": lambda p: write_sweep(p, 20 if quick else 200, 5, 1_000),
        "scale_10k": lambda p: write_run(p, 10, 1_000),
        "scale_100k": lambda p: write_run(p, 50, 2_000),
    }
    if not quick:
        plan["scale_10m"] = lambda p: write_run(p, 50, 200_000)
    paths = {}
    for name, make in plan.items():
        path = DATA / f"{'q_' if quick else ''}{name}"
        if not path.exists():
            print(f"generating {path} ...", flush=True)
            make(path)
        paths[name] = path
    paths["scale_1m"] = paths["run"]
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, one repetition")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per case (default 3)")
    parser.add_argument(
        "--only",
        metavar="TEXT",
        help="run only the comparisons whose title contains TEXT (results go to partial.*)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="JSON",
        help="only rewrite the markdown table and plot from a results JSON",
    )
    args = parser.parse_args()
    if args.report:
        write_results(json.loads(args.report.read_text()), "results")
        return
    repeat = 1 if args.quick else args.repeat
    # byte-compile tbexport as pip does when it installs it (a source checkout may have
    # no .pyc: PYTHONDONTWRITEBYTECODE): compiling at every import is not a user's cost
    compileall.compile_dir(HERE.parent / "tbexport", quiet=1)
    global ONLY
    ONLY = args.only
    paths = inputs(args.quick)
    scratch = DATA / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    # in a child, so this process stays small (children inherit its peak RSS counter)
    check = (
        "import sys; from benchmarks.run import check_exact; from pathlib import Path; "
        "print(check_exact(Path(sys.argv[1]), sys.argv[2] == 'tf2'))"
    )
    counts = [
        subprocess.run(
            [sys.executable, "-c", check, str(paths[name]), name[4:]],
            check=True,
            capture_output=True,
            text=True,
            cwd=HERE.parent,
        ).stdout.strip()
        for name in ("run", "run_tf2")
    ]
    points = int(counts[0])
    print(f"exactness: tbexport == tbparse on all {points:,} points (simple_value and TF2)")
    cli = [sys.executable, "-m", "tbexport", "{in}", "-q"]
    cpus = os.cpu_count()
    pairs = 1 if args.quick else SCALING_REPEAT
    sections = [
        compare(
            f"Read {points:,} scalars (simple_value) into a DataFrame",
            paths["run"],
            [
                Case("tbexport read_scalars", "read_tbexport"),
                Case("tbparse SummaryReader.scalars", "read_tbparse"),
                Case("EventAccumulator (size_guidance 0)", "read_event_accumulator"),
                Case("tbexport, CRC checks off", "read_tbexport_noverify"),
            ],
            repeat,
            scratch,
        ),
        compare(
            f"Read {points:,} scalars (TF2 tensors)",
            paths["run_tf2"],
            [
                Case("tbexport read_scalars", "read_tbexport"),
                Case("tbparse SummaryReader.tensors", "read_tbparse_tensors"),
            ],
            repeat,
            scratch,
        ),
        *(
            compare(
                f"Export {points:,} scalars to {suffix}",
                paths["run"],
                [
                    Case("tbexport CLI (end to end)", [*cli, "-o", f"{{out}}/ours{suffix}"]),
                    Case(f"{peer}, end to end", peer_case, end_to_end=True),
                ],
                repeat,
                scratch,
            )
            for suffix, peer, peer_case in EXPORT_PEERS
        ),
        compare(
            "Sweep: many small runs (lightning_logs/version_N)",
            paths["sweep"],
            [
                Case(f"tbexport, --jobs {os.cpu_count()}", "read_tbexport"),
                Case("tbparse SummaryReader.scalars", "read_tbparse"),
            ],
            repeat,
            scratch,
        ),
        # Fractions of a second each on a shared machine: a ratio needs more repetitions.
        # The zlib pair, a job that needs no GIL at all, runs in the same rounds: what
        # this machine gave a second core in those very minutes (its single-core speed
        # drifts), the ceiling for tbexport's pair.
        compare(
            f"Sweep on {cpus} cores against 1 ({pairs} rounds; zlib alike, same rounds)",
            paths["sweep"],
            [
                Case(f"tbexport, --jobs {cpus}", "read_tbexport"),
                Case("tbexport, --jobs 1", "read_tbexport_1job"),
                Case(f"zlib, {cpus} threads", "machine_zlib", against=f"zlib, {cpus} threads"),
                Case("zlib, 1 thread", "machine_zlib_1thread", against=f"zlib, {cpus} threads"),
            ],
            pairs,
            scratch,
            warm_up=True,
        ),
    ]
    sizes = {"10k": 1e4, "100k": 1e5, "1m": 1e6, "10m": 1e7}
    scale_names = sorted((n for n in paths if n.startswith("scale_")), key=lambda n: sizes[n[6:]])
    for name in scale_names:
        case = Case(f"tbexport, {name[6:]} points", "read_tbexport")
        sections.append(compare(f"Scaling: {case.label}", paths[name], [case], repeat, scratch))
    done = [section for section in sections if section is not None]
    write_results(done, "quick" if args.quick else "partial" if args.only else "results")


def _environment() -> str:
    names = [
        "tbexport",
        "tbparse",
        "tensorboard",
        "protobuf",
        "pandas",
        "numpy",
        "scipy",
        "openpyxl",
    ]
    versions = ", ".join(f"{n} {version(n)}" for n in names)
    return (
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; "
        f"{versions}"
    )


def write_results(sections: list[Section], stem: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    lines = [
        f"# Benchmark results{'' if stem == 'results' else f' ({stem})'}",
        "",
        f"Machine: {_environment()}.",
        "",
        "Median seconds over the repetitions; ratio = median / tbexport's median "
        "(higher is slower than tbexport; zlib's rows are compared with each other). "
        "Peak RSS is the process's high-water mark "
        "(VmHWM); 'above imports' subtracts the RSS measured after importing the libraries. "
        "The export comparisons time both sides end to end, from outside the process "
        "(start-up and imports included: tbexport's CLI against a script doing the peer "
        "pipeline); the read comparisons time the work in-process, imports excluded.",
        "",
    ]
    for section in sections:
        lines += [
            f"## {section['title']}",
            "",
            "| tool | median s | ratio | peak RSS MiB | above imports MiB |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in section["rows"]:
            above = row.get("above_imports_mib")
            lines.append(
                f"| {row['label']} | {row['median_s']:.3f} | {row['ratio']:.1f}x | "
                f"{row['peak_mib']:.0f} | {'-' if above is None else f'{above:.0f}'} |"
            )
        lines.append("")
        for row in section["rows"]:
            if "pair_ratio_median" in row:
                lines += [
                    f"Pair by pair, {row['label']} against "
                    f"{row.get('against', section['rows'][0]['label'])}: "
                    f"median ratio {row['pair_ratio_median']:.2f}x, middle half "
                    f"{row['pair_ratio_q1']:.2f}x to {row['pair_ratio_q3']:.2f}x "
                    f"({row['runs']} pairs).",
                    "",
                ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines))
    (RESULTS / f"{stem}.json").write_text(json.dumps(sections, indent=2))
    _plot(sections, RESULTS / f"{stem}.png")
    print("\n".join(lines))


def _plot(sections: list[Section], path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    compared = [s for s in sections if len(s["rows"]) > 1]
    fig, axes = plt.subplots(len(compared), 1, figsize=(8, 1.6 * len(compared) + 1))
    for ax, section in zip(np.atleast_1d(axes), compared, strict=True):
        labels = [r["label"] for r in section["rows"]][::-1]
        seconds = [r["median_s"] for r in section["rows"]][::-1]
        colors = ["tab:blue" if "tbexport" in label else "tab:gray" for label in labels]
        ax.barh(labels, seconds, color=colors)
        ax.set_xscale("log")
        ax.set_xlim(min(seconds) / 4, max(seconds) * 4)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ratios = [r["ratio"] for r in section["rows"]][::-1]
        for y, (value, ratio) in enumerate(zip(seconds, ratios, strict=True)):
            ax.text(value * 1.1, y, f"{value:.2f} s ({ratio:.1f}x)", va="center", fontsize=7)
        ax.set_title(section["title"], fontsize=9)
        ax.tick_params(labelsize=8)
    axes_list = np.atleast_1d(axes)
    axes_list[-1].set_xlabel("seconds (median, log scale)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
