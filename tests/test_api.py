"""The public API: ``__all__`` is honest and everything in it is typed and documented."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys
from pathlib import Path

import pytest

import tbexport
import tbexport.exceptions

from .builders import simple, write_events


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(tbexport) if not name.startswith("_")}
    modules = {name for name in public if inspect.ismodule(getattr(tbexport, name))}
    assert sorted(tbexport.__all__) == sorted(
        (public - modules - {"annotations"}) | {"__version__"}
    )
    for name in tbexport.__all__:
        assert hasattr(tbexport, name), name


def test_public_callables_are_documented_and_typed() -> None:
    for name in tbexport.__all__:
        obj = getattr(tbexport, name)
        if inspect.isfunction(obj):
            assert obj.__doc__, name
            hints = inspect.signature(obj)
            assert hints.return_annotation is not inspect.Signature.empty, name
        if inspect.isclass(obj):
            assert obj.__doc__, name


def test_exception_tree_matches_the_module_docstring() -> None:
    doc = tbexport.exceptions.__doc__ or ""
    for name in tbexport.exceptions.__all__:
        cls = getattr(tbexport.exceptions, name)
        if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, Warning):
            assert name in doc
            assert issubclass(cls, tbexport.TbexportError)
            assert len((cls.__doc__ or "").strip().splitlines()) == 1, name
    assert issubclass(tbexport.NoEventFilesError, tbexport.InputError)
    assert issubclass(tbexport.UnknownFormatError, tbexport.OutputError)
    warnings = [n for n in tbexport.exceptions.__all__ if n.endswith("Warning")]
    assert warnings == ["CorruptRecordWarning", "OutputWarning"]
    assert all(name in doc for name in warnings)


def test_exporter_never_imports_torch_or_lightning() -> None:
    code = (
        "import sys, tbexport, tbexport.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'torch', 'pytorch_lightning', 'lightning', 'tensorflow'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_one_string_is_one_pattern_or_a_comma_list_of_statistics(tmp_path: Path) -> None:
    for run, scale in (("a", 1.0), ("b", 3.0)):
        write_events(
            tmp_path / run / "events.out.tfevents.1",
            [simple("val_loss", 0, scale), simple("val_acc", 0, scale / 4), simple("lr", 0, 0.1)],
        )
    frame = tbexport.read_scalars(tmp_path, tags="val_*")  # not the characters v, a, l, _, *
    assert sorted(frame["tag"].cat.categories) == ["val_acc", "val_loss"]
    assert frame.equals(tbexport.read_scalars(tmp_path, tags=["val_*"]))
    reduced = tbexport.reduce_runs(frame, "mean, std")
    assert reduced.equals(tbexport.reduce_runs(frame, ["mean", "std"]))
    loss = reduced[reduced["tag"] == "val_loss"]
    assert loss["run"].astype(str).tolist() == ["mean", "std"]
    assert loss["value"].tolist() == [2.0, math.sqrt(2.0)]


def test_bad_options_raise_the_documented_errors(tmp_path: Path) -> None:
    write_events(tmp_path / "run" / "events.out.tfevents.1", [simple("loss", 0, 1.0)])
    frame = tbexport.read_scalars(tmp_path)
    calls = {
        "smoothing weight must be in [0, 1), not 1": lambda: tbexport.smooth(frame, 1.0),
        "unknown statistic 'avg'; choose from mean, std, min, max, median, count": (
            lambda: tbexport.reduce_runs(frame, ["avg"])
        ),
        "jobs must be 1 or more, not 0": lambda: tbexport.read_scalars(tmp_path, jobs=0),
    }
    for message, call in calls.items():
        with pytest.raises(tbexport.InvalidOptionError) as raised:
            call()
        assert str(raised.value) == message
        assert isinstance(raised.value, ValueError)  # what callers caught before
    with pytest.raises(tbexport.InputError, match=r"^no paths given to read$"):
        tbexport.read_scalars([])


def test_paths_may_be_a_generator(tmp_path: Path) -> None:
    for run in ("version_0", "version_1"):
        write_events(tmp_path / run / "events.out.tfevents.1", [simple("loss", 0, 1.0)])
    frame = tbexport.read_scalars(tmp_path.glob("version_*"))
    assert sorted(frame["run"].astype(str)) == ["version_0", "version_1"]
    out = tbexport.export(tmp_path.glob("version_*"), tmp_path / "o.csv").output
    assert out.read_text().count("loss") == 2
