"""The public API: ``__all__`` is honest and everything in it is typed and documented."""

from __future__ import annotations

import inspect
import subprocess
import sys

import tbexport
import tbexport.exceptions


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
        if issubclass(cls, Exception) and name != "CorruptRecordWarning":
            assert name in doc
            assert issubclass(cls, tbexport.TbexportError)
            assert len((cls.__doc__ or "").strip().splitlines()) == 1, name
    assert issubclass(tbexport.NoEventFilesError, tbexport.InputError)
    assert issubclass(tbexport.UnknownFormatError, tbexport.OutputError)


def test_exporter_never_imports_torch_or_lightning() -> None:
    code = (
        "import sys, tbexport, tbexport.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'torch', 'pytorch_lightning', 'lightning', 'tensorflow'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
