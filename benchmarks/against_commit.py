"""tbexport now against tbexport at an earlier commit, in one run, alternating.

    python -m benchmarks.against_commit af9a2a2            # build that commit, compare
    python -m benchmarks.against_commit af9a2a2 --rounds 9

The commit is checked out in its own worktree (benchmarks/data/at-COMMIT) and
installed in its own virtual environment there (its C extension built by pip), so
that the two versions never share a module. Each case runs in a fresh process of
each version in turn, old and new alternating, ``--rounds`` times; the time is taken
inside the process around the work alone (imports excluded). Reported: the medians
and the median of the per-round ratios (new / old). The inputs are the benchmark
inputs of ``benchmarks.run`` (generated here when missing).

``--in-process`` times the reading cases in this one process instead, the old
package imported beside the new one (copied as ``tbexport_old``), alternating, with
the middle half of the ratios: far steadier than fresh processes on a shared
machine, where a fresh process's speed drifts by a factor of 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

from .generate import write_run, write_sweep

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "data"

# (label, Python statement timed; `src` is the input, `out` a scratch directory)
CASES = [
    ("read 1M scalars", "run", "tbexport.load_scalars(src)"),
    ("read 1M scalars (TF2 tensors)", "run_tf2", "tbexport.load_scalars(src)"),
    ("200-run sweep (5 tags x 1,000 steps)", "sweep", "tbexport.load_scalars(src)"),
    ("200-run sweep, 1 job", "sweep", "tbexport.load_scalars(src, jobs=1)"),
    ("200-run sweep, 2 jobs", "sweep", "tbexport.load_scalars(src, jobs=2)"),
    ("export 1M scalars to .csv", "run", "tbexport.export(src, out / 'x.csv')"),
    ("export 1M scalars to .xlsx", "run", "tbexport.export(src, out / 'x.xlsx')"),
    ("export 1M scalars to .mat", "run", "tbexport.export(src, out / 'x.mat')"),
]

CHILD = """
import json, sys, tempfile, time
from collections.abc import Callable
from pathlib import Path
import tbexport
src, out = Path(sys.argv[1]), Path(tempfile.mkdtemp())
start = time.perf_counter()
{statement}
print(json.dumps(time.perf_counter() - start))
"""


def _inputs() -> dict[str, Path]:
    plan: dict[str, Callable[[Path], Path]] = {
        "run": lambda p: write_run(p, 50, 20_000),
        "run_tf2": lambda p: write_run(p, 50, 20_000, tensor=True),
        "sweep": lambda p: write_sweep(p, 200, 5, 1_000),
    }
    paths = {}
    for name, make in plan.items():
        path = DATA / name
        if not path.exists():
            make(path)
        paths[name] = path
    return paths


def _old_python(commit: str) -> Path:
    """The Python of a virtual environment holding tbexport at ``commit``."""
    tree = DATA / f"at-{commit}"
    python = tree / ".venv" / "bin" / "python"
    if python.exists():
        return python
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], check=True, cwd=REPO)
    subprocess.run([sys.executable, "-m", "venv", str(tree / ".venv")], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(tree)], check=True)
    # the dependencies: this environment's, after the old tbexport on the path
    (site,) = (tree / ".venv" / "lib").glob("python*/site-packages")
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _time(python: Path, statement: str, source: Path) -> float:
    done = subprocess.run(
        [str(python), "-c", CHILD.format(statement=statement), str(source)],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",  # not the repository: each version imports its own tbexport
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def _in_process(commit: str, rounds: int, only: str | None) -> None:
    """The reading cases, both versions imported here, alternating (see the module)."""
    import importlib
    import shutil
    import time

    python = _old_python(commit)
    (site,) = (python.parent.parent / "lib").glob("python*/site-packages")
    copy = DATA / f"at-{commit}-package"
    if not (copy / "tbexport_old").exists():
        shutil.copytree(site / "tbexport", copy / "tbexport_old")  # relative imports: renamable
    sys.path.insert(0, str(copy))
    old, new = importlib.import_module("tbexport_old"), importlib.import_module("tbexport")
    inputs = _inputs()
    head = f"| case (one process, {rounds} rounds) | {commit} (s) | now (s) | now / then"
    print(f"{head} (middle half) |")
    print("|---|---:|---:|---:|")
    for label, source, statement in CASES:
        if "export" in label or (only and only not in label):
            continue
        call = statement.removeprefix("tbexport.")
        times: dict[str, list[float]] = {"old": [], "new": []}
        for module in (old, new):  # warm: imports, the page cache
            eval(call, {"load_scalars": module.load_scalars, "src": inputs[source]})
        for round_ in range(rounds):
            pair = [("old", old), ("new", new)] if round_ % 2 == 0 else [("new", new), ("old", old)]
            for name, module in pair:
                start = time.perf_counter()
                eval(call, {"load_scalars": module.load_scalars, "src": inputs[source]})
                times[name].append(time.perf_counter() - start)
        ratios = [n / t for n, t in zip(times["new"], times["old"], strict=True)]
        low, _, high = statistics.quantiles(ratios, n=4)
        print(
            f"| {label} | {statistics.median(times['old']):.4f} "
            f"| {statistics.median(times['new']):.4f} "
            f"| {statistics.median(ratios):.2f} ({low:.2f} to {high:.2f}) |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("commit")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", help="run the cases whose label contains this")
    parser.add_argument("--in-process", action="store_true", help="the reading cases, here")
    args = parser.parse_args()
    if args.in_process:
        _in_process(args.commit, args.rounds, args.only)
        return
    inputs = _inputs()
    old, new = _old_python(args.commit), Path(sys.executable)
    print(f"| case | {args.commit} (s) | now (s) | now / then |")
    print("|---|---:|---:|---:|")
    for label, source, statement in CASES:
        if args.only and args.only not in label:
            continue
        then: list[float] = []
        now: list[float] = []
        for _ in range(args.rounds):
            then.append(_time(old, statement, inputs[source]))
            now.append(_time(new, statement, inputs[source]))
        ratio = statistics.median(n / t for n, t in zip(now, then, strict=True))
        print(
            f"| {label} | {statistics.median(then):.3f} | {statistics.median(now):.3f} "
            f"| {ratio:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
