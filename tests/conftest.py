from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE_RUNS = REPO / "sample_runs"


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default outputs land in the current directory: keep them in the test's tmp dir."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def sample_runs() -> Path:
    return SAMPLE_RUNS


@pytest.fixture
def prefetch_takes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each file taken from a prefetcher had been read ahead (False: read as usual)."""
    from tbexport import decode

    taken: list[bool] = []
    real_take = decode.Prefetcher.take

    def take(self: decode.Prefetcher, path: str) -> tuple[Any, ...] | None:
        fetched = real_take(self, path)
        taken.append(fetched is not None)
        return fetched

    monkeypatch.setattr(decode.Prefetcher, "take", take)
    return taken


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(params=["c", "c-mapped", "python"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the C fast path and again with the pure-protobuf reader.

    ``c-mapped`` maps the file (as for large files) and scans it in many small
    chunks, so that tags and damage straddle chunk boundaries.
    """
    from tbexport import decode

    if request.param == "python":
        monkeypatch.setattr(decode, "_fastscan", None)
    elif decode._fastscan is None:
        pytest.skip("the C extension tbexport._fastscan is not built")
    if request.param == "c-mapped":
        monkeypatch.setattr(decode, "_MAP_MIN_BYTES", 0)
        monkeypatch.setattr(decode, "_CHUNK_BYTES", 256)
    return str(request.param)
