from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(params=["c", "c-windows", "python"])
def reader(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test with the C scanner and again with the pure-protobuf reader.

    ``c-windows`` reads every file in windows of 64 bytes (as large files are read, a
    window at a time), so that records, tags and damage straddle the windows.
    """
    from tbexport import native, tuning

    if request.param != "python" and native.codec is None:
        pytest.skip("the C extension tbexport._codec is not built")
    changes: dict[str, object] = {"native": request.param != "python"}
    if request.param == "c-windows":
        changes |= {"whole_file_bytes": 0, "window_bytes": 64}
    with tuning.tuned(**changes):
        yield str(request.param)
