"""One timed case, run in a fresh process: ``python -m benchmarks.cases CASE INPUT OUTDIR``.

Prints one JSON line: seconds for the work itself (imports excluded), peak RSS of
the process and RSS after imports (both MiB). CLI cases are timed from outside
by ``run.py`` instead (end to end, process start included).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _rss_now() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_rss() -> float:
    """VmHWM: unlike ru_maxrss it is not inherited from the parent across fork/exec."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tbparse_frame(path: Path) -> Any:
    from tbparse import SummaryReader

    return SummaryReader(str(path)).scalars


def read_tbexport(path: Path, out: Path) -> None:
    import tbexport

    tbexport.read_scalars(path)


def read_tbexport_1job(path: Path, out: Path) -> None:
    import tbexport

    tbexport.read_scalars(path, jobs=1)


def read_tbexport_noverify(path: Path, out: Path) -> None:
    import tbexport

    tbexport.load_scalars(path, verify=False)


def read_tbparse(path: Path, out: Path) -> None:
    _tbparse_frame(path)


def read_tbparse_tensors(path: Path, out: Path) -> None:
    from tbparse import SummaryReader

    SummaryReader(str(path)).tensors  # noqa: B018  (TF2 scalars are tensors to tbparse)


def read_event_accumulator(path: Path, out: Path) -> None:
    import pandas as pd
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    frames = []
    for run in sorted({p.parent for p in path.rglob("*tfevents*")}):
        accumulator = EventAccumulator(str(run), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            events = accumulator.Scalars(tag)
            frames.append(
                pd.DataFrame(
                    {
                        "run": str(run),
                        "tag": tag,
                        "step": [e.step for e in events],
                        "wall_time": [e.wall_time for e in events],
                        "value": [e.value for e in events],
                    }
                )
            )
    pd.concat(frames)


def xlsx_tbparse_pandas(path: Path, out: Path) -> None:
    import pandas as pd

    frame = _tbparse_frame(path)
    with pd.ExcelWriter(out / "peer.xlsx", engine="openpyxl") as writer:
        for i, (_, group) in enumerate(frame.groupby("tag")):
            group[["step", "value"]].to_excel(writer, sheet_name=f"tag{i}", index=False)


def mat_tbparse_scipy(path: Path, out: Path) -> None:
    import scipy.io

    frame = _tbparse_frame(path)
    variables = {
        f"tag{i}": {"step": g["step"].to_numpy(float), "value": g["value"].to_numpy()}
        for i, (_, g) in enumerate(frame.groupby("tag"))
    }
    scipy.io.savemat(out / "peer.mat", variables)


def csv_tbparse_pandas(path: Path, out: Path) -> None:
    _tbparse_frame(path).to_csv(out / "peer.csv", index=False)


def _zlib_on_threads(path: Path, threads: int) -> None:
    import zlib
    from concurrent.futures import ThreadPoolExecutor

    chunks = [f.read_bytes() for f in sorted(path.rglob("*tfevents*"))]
    with ThreadPoolExecutor(threads) as pool:  # zlib.compress releases the GIL
        list(pool.map(lambda chunk: zlib.compress(chunk, 1), chunks))


def machine_zlib(path: Path, out: Path) -> None:
    from tbexport.parallel import default_jobs

    _zlib_on_threads(path, default_jobs())


def machine_zlib_1thread(path: Path, out: Path) -> None:
    _zlib_on_threads(path, 1)


CASES: dict[str, Callable[[Path, Path], None]] = {
    f.__name__: f
    for f in (
        read_tbexport,
        read_tbexport_1job,
        read_tbexport_noverify,
        read_tbparse,
        read_tbparse_tensors,
        read_event_accumulator,
        xlsx_tbparse_pandas,
        mat_tbparse_scipy,
        csv_tbparse_pandas,
        machine_zlib,
        machine_zlib_1thread,
    )
}

if __name__ == "__main__":
    case, source, outdir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    # import what the case needs, and only that, before the clock starts: the peers'
    # processes do not carry tbexport's imports, nor ours theirs
    import pandas  # noqa: F401

    if "tbparse" in case:
        import tbparse  # noqa: F401
    elif "event_accumulator" in case:
        from tensorboard.backend.event_processing import event_accumulator  # noqa: F401
    else:
        import tbexport  # noqa: F401
    baseline = _rss_now()
    started = time.perf_counter()
    CASES[case](source, outdir)
    seconds = time.perf_counter() - started
    peak = _peak_rss()
    print(json.dumps({"seconds": seconds, "peak_mib": peak, "baseline_mib": baseline}))
