"""Turn tags and run names into valid, unique, recognisable Excel sheet and MATLAB names."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "MATLAB_MAX",
    "SHEET_MAX",
    "matlab_name",
    "matlab_names",
    "sheet_continuation",
    "sheet_names",
]

SHEET_MAX = 31
MATLAB_MAX = 63
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")
_MATLAB_BAD = re.compile(r"[^A-Za-z0-9_]+")
# Names Excel refuses (History) or that tbexport uses for its own sheets.
_RESERVED_SHEETS = {"history", "index"}
_MATLAB_KEYWORDS = {
    "break",
    "case",
    "catch",
    "classdef",
    "continue",
    "else",
    "elseif",
    "end",
    "for",
    "function",
    "global",
    "if",
    "otherwise",
    "parfor",
    "persistent",
    "return",
    "spmd",
    "switch",
    "try",
    "while",
}


def _shorten(name: str, limit: int, joint: str) -> str:
    """Keep the start and the (usually most telling) end of a long name."""
    if len(name) <= limit:
        return name
    tail = (limit - len(joint)) // 2
    head = limit - len(joint) - tail
    return name[:head] + joint + name[-tail:]


def _uniquify(base: str, taken: set[str], limit: int, fold: bool, fmt: str) -> str:
    key = base.lower() if fold else base
    if key not in taken:
        taken.add(key)
        return base
    n = 2
    while True:
        suffix = fmt.format(n)
        candidate = base[: limit - len(suffix)] + suffix
        key = candidate.lower() if fold else candidate
        if key not in taken:
            taken.add(key)
            return candidate
        n += 1


def sheet_names(tags: Iterable[str], reserved: Iterable[str] = ()) -> dict[str, str]:
    """Map each tag to a valid Excel sheet name, unique ignoring case."""
    taken = {r.lower() for r in reserved} | _RESERVED_SHEETS
    names: dict[str, str] = {}
    for tag in tags:
        clean = _SHEET_BAD.sub("_", tag).strip("'") or "tag"
        names[tag] = _uniquify(_shorten(clean, SHEET_MAX, "~"), taken, SHEET_MAX, True, " ({})")
    return names


def sheet_continuation(name: str, part: int, taken: set[str]) -> str:
    """Name of the ``part``-th sheet (2, 3, …) of a tag too long for one sheet."""
    suffix = f" #{part}"
    return _uniquify(name[: SHEET_MAX - len(suffix)] + suffix, taken, SHEET_MAX, True, "-{}")


def matlab_name(text: str) -> str:
    """A valid MATLAB identifier resembling ``text`` (not yet made unique)."""
    clean = _MATLAB_BAD.sub("_", text).strip("_") or "tag"
    if not clean[0].isalpha():
        clean = "x" + clean
    if clean.lower() in _MATLAB_KEYWORDS or clean.startswith("tbexport_"):
        clean += "_"
    return _shorten(clean, MATLAB_MAX, "__")


def matlab_names(texts: Iterable[str], reserved: Iterable[str] = ()) -> dict[str, str]:
    """Map each text to a valid MATLAB identifier, unique (MATLAB names are case-sensitive)."""
    taken = set(reserved)
    return {t: _uniquify(matlab_name(t), taken, MATLAB_MAX, False, "_{}") for t in texts}
