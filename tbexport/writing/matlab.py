"""MATLAB ``.mat`` output: a MAT-file (version 5) that MATLAB, Octave and scipy read.

Layouts (every vector a double column):

- one run: one struct per tag with fields ``step``, the time field (``wall_time``,
  ``datetime`` as a MATLAB ``datenum``, or ``relative_time``), ``value`` and, with
  smoothing, ``value_smoothed``;
- several runs: one struct per run whose fields are the tag structs;
- statistics (``--reduce``, ``options.statistics``: the runs are ``mean``, ``std``,
  ...): one struct ``stats`` with a field per statistic holding the tag structs
  (``stats.mean.val_loss.value``), so that no variable takes the place of ``mean()``;
- wide (``--layout wide``): one struct per tag with ``step`` (nx1), ``value``
  (nxruns, NaN where a run has no point), ``logged`` (nxruns logical: which cells
  hold a point), ``runs`` (1xruns cell of run names) and, with smoothing,
  ``value_smoothed`` (nxruns).

``tbexport_tags`` maps each original tag to its variable or field name (Nx2 cell);
``tbexport_runs`` (Nx3 cell: run name, MATLAB name, directory) lists the runs in
every layout but the long one-run one: the MATLAB name is the run's struct (or
field of ``stats``) and its field of ``hparams``; the directory is the run's own
(its name unless ``--name-by`` relabelled it; empty for a statistic). ``hparams``
holds each run's hyperparameters (a struct per run; the one run's directly), with
``tbexport_directory`` where ``--name-by`` relabelled the run.

No variable of the file is named like a MATLAB or Octave function: a tag or run
whose name would be (``mean``, ``max``, ``sum``, ``plot``, ...) gets a trailing
``_`` (``max_``), as keywords do (``end_``); fields keep the plain name.

Text is written as UTF-16 (``miUTF16``), which MATLAB and Octave read whole (scipy's
writer stores UTF-8 that Octave cuts short; scipy reads it back unless a string has
a character beyond the BMP, such as an emoji). The file is written here rather than
by ``scipy.io.savemat``, whose header holds the time of writing: the same data gives
the same bytes.
"""

from __future__ import annotations

import numbers
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from tbexport import __version__
from tbexport.names import MATLAB_MAX, matlab_name, matlab_names
from tbexport.options import WriteOptions
from tbexport.shaping import runs_side_by_side, time_column, value_columns

OWN_VARIABLES = ("tbexport_tags", "tbexport_runs", "hparams", "stats")
DIRECTORY_FIELD = "tbexport_directory"  # (a hyperparameter of that name gets a "_")
_DATENUM_EPOCH = 719529.0  # datenum(1970, 1, 1)

# Functions and constants of MATLAB and Octave that a variable would hide once loaded
# (load('stats.mat'); mean(x) fails if the file holds a variable "mean").
_BUILTIN_NAMES = """
    abs accumarray acos acosh addpath all alpha and angle ans any area arrayfun asin
    asinh assert atan atan2 atanh axes axis bar barh batch beta bitand bitor bitshift
    bitxor blanks box cat cd ceil cell cell2mat cellfun char chol circshift cla class
    clc clear clf clock close colorbar colormap colon columns complex cond conj
    contour conv copyfile corr corrcoef cos cosh count cov cross cummax cummin cumprod
    cumsum cputime date datenum datestr datetime deal deblank deconv delete det
    diag diary diff disp display dot double drawnow e edit eig end eps erf erfc error
    errorbar eval evalin exist exit exp expm eye factorial false feval fft fieldnames
    figure fill filter find fix flintmax flip fliplr flipud floor fminsearch format
    fprintf fread fzero gamma gca gcd gcf get getfield gradient grid hadamard help
    hist histc histogram hold horzcat hypot i ifft imag image imagesc imshow ind2sub
    Inf inf info input int16 int2str int32 int64 int8 interp1 intmax intmin inv iqr
    isa iscell ischar isempty isequal isfield isfinite isinf islogical isnan
    isnumeric isreal isrow isscalar isstruct isvector j keyboard kron kurtosis lcm
    legend length line linspace load log log10 log1p log2 logical loglog logspace
    lookfor lower ls lu magic mat2str max mean median memory mesh min mkdir mod mode
    more movefile movmean movsum NA NaN nan nargin nargout nchoosek ndims nnz norm
    normalize not now null num2cell num2str numel ones open or orth patch pause
    permute pi pinv plot plot3 polyfit polyval pow2 prctile primes print printf prod
    pwd qr quantile quit rand randi randn randperm range rank rat real realmax
    realmin regexp regexprep rem repmat rescale reshape rethrow rmfield roots round
    rows run save saveas scatter semilogx semilogy set setfield sign sin single sinh
    size skewness sort source spline sprintf sqrt sqrtm squeeze stairs std stem
    str2double str2func str2num strcat strcmp strcmpi strfind strjoin strrep
    strsplit strtrim struct structfun sub2ind subplot sum surf svd tan tanh test
    text tic time title toc trace trapz true type uint16 uint32 uint64 uint8 unique
    upper var varargin varargout version vertcat view warning which who whos xlabel xlim
    xor ylabel ylim zeros zlabel
"""
BUILTINS = frozenset(_BUILTIN_NAMES.split())


def write(frame: pd.DataFrame, path: Path, options: WriteOptions | None = None) -> None:
    """Write ``frame`` as a MAT-file (version 5) readable by MATLAB, Octave and scipy."""
    options = options or WriteOptions()
    runs = [str(r) for r in frame["run"].cat.categories if (frame["run"] == r).any()]
    tags = [str(t) for t in frame["tag"].cat.categories if (frame["tag"] == t).any()]
    variables: dict[str, Any] = {}
    statistics = bool(options.statistics)  # (--reduce: the runs are statistics)
    if options.layout == "wide":
        tag_vars = variable_names(tags)
        run_vars = matlab_names(runs)
        for tag, group in frame.groupby("tag", observed=True, sort=True):
            variables[tag_vars[str(tag)]] = _wide_struct(group)
    elif statistics:
        tag_vars = matlab_names(tags, reserved=OWN_VARIABLES)
        run_vars = matlab_names(runs)
        variables["stats"] = {
            run_vars[str(run)]: _tag_structs(group, tag_vars)
            for run, group in frame.groupby("run", observed=True, sort=True)
        }
    elif len(runs) == 1:
        tag_vars = variable_names(tags)
        run_vars = variable_names(runs)
        variables.update(_tag_structs(frame, tag_vars))
    else:
        tag_vars = matlab_names(tags, reserved=OWN_VARIABLES)
        run_vars = variable_names(runs)
        for run, group in frame.groupby("run", observed=True, sort=True):
            variables[run_vars[str(run)]] = _tag_structs(group, tag_vars)
    directories = options.directories or {}
    if options.layout == "wide" or statistics or len(runs) > 1:
        variables["tbexport_runs"] = _cell(
            [[r, run_vars[r], "" if statistics else directories.get(r, r)] for r in runs]
        )
    variables["tbexport_tags"] = _cell([[t, tag_vars[t]] for t in tags])
    if options.hparams is not None and len(options.hparams.columns) > 1:
        single = len(runs) == 1
        variables["hparams"] = _hparams_struct(options.hparams, run_vars, single, directories)
    with open(path, "wb") as stream:
        write_mat(stream, variables)


def variable_names(texts: Iterable[str], taken: Iterable[str] = ()) -> dict[str, str]:
    """Like :func:`matlab_names`, for variables: none hides a MATLAB or Octave function
    (``mean`` -> ``mean_``) or is one of tbexport's own (``stats`` -> ``stats_``), and
    none is in ``taken``."""
    used = set(taken) | set(OWN_VARIABLES)
    names: dict[str, str] = {}
    for text in texts:
        base = matlab_name(text)
        if base in BUILTINS or base in OWN_VARIABLES:
            base = base[: MATLAB_MAX - 1] + "_"
        name, n = base, 2
        while name in used:
            suffix = f"_{n}"
            name, n = base[: MATLAB_MAX - len(suffix)] + suffix, n + 1
        used.add(name)
        names[text] = name
    return names


def _tag_structs(frame: pd.DataFrame, tag_vars: dict[str, str]) -> dict[str, dict[str, Any]]:
    time = time_column(frame)
    fields = ["step", time, *value_columns(frame)]
    structs = {}
    for tag, group in frame.groupby("tag", observed=True, sort=True):
        struct_ = {f: group[f].to_numpy(dtype=np.float64) for f in fields}
        if time == "datetime":
            struct_[time] = struct_[time] / 86400.0 + _DATENUM_EPOCH
        structs[tag_vars[str(tag)]] = struct_
    return structs


def _wide_struct(group: pd.DataFrame) -> dict[str, Any]:
    table = runs_side_by_side(group)
    # which cells hold a point: a NaN logged is not a step the run skipped
    logged = runs_side_by_side(group.assign(logged=1.0), "logged").notna()
    struct_: dict[str, Any] = {
        "step": table.index.to_numpy(dtype=np.float64),
        "value": table.to_numpy(dtype=np.float64),
        "logged": logged.to_numpy(dtype=bool),
        "runs": _row_cell(list(table.columns)),
    }
    if "value_smoothed" in group:
        smoothed = runs_side_by_side(group, "value_smoothed")
        struct_["value_smoothed"] = smoothed.to_numpy(dtype=np.float64)
    return struct_


def _hparams_struct(
    hparams: pd.DataFrame, run_vars: dict[str, str], single: bool, directories: Mapping[str, str]
) -> Any:
    names = matlab_names([str(c) for c in hparams.columns if c != "run"])
    # runs with hyperparameters but no scalars get valid names too, unlike the others'
    others = [str(r) for r in hparams["run"] if str(r) not in run_vars]
    single = single and not others  # (the one run's own hyperparameters, not another's)
    run_vars = run_vars | variable_names(others, taken=run_vars.values())
    structs = {}
    for row in hparams.to_dict("records"):
        run = str(row.pop("run"))
        values = {names[str(k)]: v for k, v in row.items() if v is not None and v == v}
        if run in directories:
            values[DIRECTORY_FIELD] = directories[run]
        structs[run_vars[run]] = values
    return next(iter(structs.values())) if single and len(structs) == 1 else structs


def _cell(rows: list[list[str]]) -> np.ndarray:
    cell = np.empty((len(rows), len(rows[0]) if rows else 0), dtype=object)
    for i, row in enumerate(rows):
        for j, item in enumerate(row):
            cell[i, j] = item
    return cell


def _row_cell(items: list[str]) -> np.ndarray:
    cell = np.empty((1, len(items)), dtype=object)
    for i, item in enumerate(items):
        cell[0, i] = item
    return cell


# MAT-file version 5 (MathWorks, "MAT-File Format"): a 128-byte header, then one
# miMATRIX element per variable; little-endian, uncompressed.
_MI_INT8, _MI_UINT8, _MI_INT32, _MI_UINT32, _MI_DOUBLE, _MI_INT64 = 1, 2, 5, 6, 9, 12
_MI_MATRIX, _MI_UTF16 = 14, 17
_MX_CELL, _MX_STRUCT, _MX_CHAR, _MX_DOUBLE, _MX_UINT8, _MX_INT64 = 1, 2, 4, 6, 9, 14
_LOGICAL = 0x200  # array flag
_FIELD_LENGTH = MATLAB_MAX + 1  # field names (at most 63 characters), NUL-padded
_EXACT_INTEGERS = 2**53


def header() -> bytes:
    """The 128-byte header: text (no date: the same data gives the same file), no
    subsystem data, version 0x0100, and the endian indicator ``IM`` (little-endian)."""
    text = f"MATLAB 5.0 MAT-file, Platform: tbexport {__version__}, Created by: tbexport"
    return text.encode("ascii").ljust(116) + bytes(8) + struct.pack("<H", 0x0100) + b"IM"


def write_mat(stream: BinaryIO, variables: Mapping[str, Any]) -> None:
    """Write ``variables`` (name -> value) as a MAT-file: dicts become 1x1 structs,
    object arrays cells, ``str`` char rows, ``bool`` and bool arrays logicals, numbers
    and float arrays doubles (a 1-D array a column)."""
    stream.write(header())
    for name, value in variables.items():
        stream.writelines(_matrix(name, value))


def _element(kind: int, data: bytes) -> list[bytes]:
    """A data element: its tag and data padded to 8 bytes (4 or fewer bytes: the
    compact form, tag and data in 8 bytes)."""
    if len(data) <= 4:
        return [struct.pack("<HH", kind, len(data)) + data.ljust(4, b"\0")]
    return [struct.pack("<II", kind, len(data)), data, bytes(-len(data) % 8)]


def _matrix(name: str, value: Any) -> list[bytes]:
    """An miMATRIX element named ``name`` ("" inside a struct or cell)."""
    flags, shape, parts = _contents(value)
    body = [
        *_element(_MI_UINT32, struct.pack("<II", flags, 0)),
        *_element(_MI_INT32, struct.pack(f"<{len(shape)}i", *shape)),
        *_element(_MI_INT8, name.encode("ascii")),
        *parts,
    ]
    return [struct.pack("<II", _MI_MATRIX, sum(len(b) for b in body)), *body]


def _contents(value: Any) -> tuple[int, tuple[int, ...], list[bytes]]:
    """(array flags and class, dimensions, data elements) of ``value``."""
    if isinstance(value, Mapping):
        fields = [str(f) for f in value]
        names = b"".join(f.encode("ascii").ljust(_FIELD_LENGTH, b"\0") for f in fields)
        parts = [
            *_element(_MI_INT32, struct.pack("<i", _FIELD_LENGTH)),
            *_element(_MI_INT8, names),
        ]
        for field in value.values():
            parts += _matrix("", field)
        return _MX_STRUCT, (1, 1), parts
    if isinstance(value, str):
        units = value.encode("utf-16-le", errors="surrogatepass")
        shape: tuple[int, ...] = (1, len(units) // 2) if units else (0, 0)
        return _MX_CHAR, shape, _element(_MI_UTF16, units)
    if isinstance(value, (bool, np.bool_)):
        return _MX_UINT8 | _LOGICAL, (1, 1), _element(_MI_UINT8, bytes([bool(value)]))
    if isinstance(value, numbers.Integral) and _EXACT_INTEGERS < abs(int(value)) < 2**63:
        return _MX_INT64, (1, 1), _element(_MI_INT64, struct.pack("<q", int(value)))
    if isinstance(value, numbers.Real):
        return _MX_DOUBLE, (1, 1), _element(_MI_DOUBLE, struct.pack("<d", float(value)))
    if not isinstance(value, np.ndarray):
        return _contents(str(value))
    array = value.reshape(-1, 1) if value.ndim == 1 else value
    shape = tuple(int(n) for n in array.shape)
    if array.dtype == object:
        parts = []
        for item in array.ravel(order="F"):
            parts += _matrix("", item)
        return _MX_CELL, shape, parts
    if array.dtype == bool:
        data = array.astype(np.uint8).tobytes(order="F")
        return _MX_UINT8 | _LOGICAL, shape, _element(_MI_UINT8, data)
    return _MX_DOUBLE, shape, _element(_MI_DOUBLE, array.astype("<f8").tobytes(order="F"))
