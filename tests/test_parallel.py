"""Reading on several threads or processes gives exactly what one reader reads."""

from __future__ import annotations

from concurrent.futures import Executor
from pathlib import Path

import pandas as pd
import pytest

import tbexport
from tbexport import load, parallel

from .builders import simple, write_events


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "lightning_logs"
    for version in range(12):
        events = [simple(f"m{t}", s, version + s / 7 + t) for s in range(200) for t in range(3)]
        write_events(root / f"version_{version}" / "events.out.tfevents.1", events)
    return root


@pytest.mark.parametrize("workers", ["threads", "processes"])
def test_parallel_read_equals_serial(
    sweep: Path, workers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = tbexport.read_scalars(sweep, jobs=1)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", {"threads": 0, "processes": 0})
    monkeypatch.setattr(load, "scans_without_gil", lambda: workers == "threads")
    pools: list[str] = []
    real_executor = parallel._executor

    def executor(count: int, threads: bool) -> Executor:
        pools.append(type(pool := real_executor(count, threads)).__name__)
        return pool

    monkeypatch.setattr(parallel, "_executor", executor)
    seen: list[int] = []
    data = tbexport.load_scalars(sweep, jobs=2, progress=seen.append)
    pd.testing.assert_frame_equal(serial, data.frame)
    assert len(serial) == 12 * 200 * 3
    assert list(serial["run"].cat.categories) == [f"version_{v}" for v in range(12)]
    assert sum(seen) == sum(f.stat().st_size for f in sweep.rglob("events.out.*"))
    assert pools == ["ThreadPoolExecutor" if workers == "threads" else "ProcessPoolExecutor"]


def test_cli_jobs_and_no_verify(sweep: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tbexport.cli import cli

    out = tmp_path / "s.csv"
    result = CliRunner().invoke(cli, [str(sweep), "-o", str(out), "-j", "2", "--no-verify", "-q"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out)) == 12 * 200 * 3
    bad = CliRunner().invoke(cli, [str(sweep), "-j", "0"])
    assert bad.exit_code == 2 and "0 is not in the range x>=1" in bad.stderr
