"""Turn tags and run names into valid, unique, recognisable Excel sheet and MATLAB names."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

__all__ = [
    "FILE_MAX",
    "MATLAB_MAX",
    "SHEET_MAX",
    "file_names",
    "matlab_name",
    "matlab_names",
    "sheet_continuation",
    "sheet_names",
]

SHEET_MAX = 31  # UTF-16 code units, as Excel counts them
MATLAB_MAX = 63
# UTF-8 bytes of a file name's stem: file systems take 255, and the temporary name
# of an atomic write adds ~20 to the whole name
FILE_MAX = 200
_SHEET_BAD = re.compile(r"[\[\]:*?/\\\x00-\x1f\x7f]")  # and control characters
_FILE_BAD = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')  # what Windows refuses, and controls
_MATLAB_BAD = re.compile(r"[^A-Za-z0-9_]+")
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul"} | {
    f"{d}{n}" for d in ("com", "lpt") for n in range(10)
}
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


def _utf16_units(text: str) -> int:
    """Length as Excel counts it: a character beyond the BMP (an emoji) counts twice."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def _head(text: str, limit: int, size: Callable[[str], int]) -> str:
    """The longest start of ``text`` of at most ``limit`` by ``size``."""
    while size(text) > limit:
        text = text[: len(text) - max(1, (size(text) - limit) // 2)]
    return text


def _shorten(name: str, limit: int, joint: str, size: Callable[[str], int] = len) -> str:
    """Keep the start and the (usually most telling) end of a long name."""
    if size(name) <= limit:
        return name
    tail = (limit - size(joint)) // 2
    head = _head(name, limit - size(joint) - tail, size)
    end = _head(name[::-1], tail, size)[::-1]
    return head + joint + end


def _uniquify(
    base: str, taken: set[str], limit: int, fold: bool, fmt: str, size: Callable[[str], int] = len
) -> str:
    key = base.lower() if fold else base
    if key not in taken:
        taken.add(key)
        return base
    n = 2
    while True:
        suffix = fmt.format(n)
        candidate = _head(base, limit - size(suffix), size) + suffix
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
        short = _shorten(clean, SHEET_MAX, "~", _utf16_units)
        names[tag] = _uniquify(short, taken, SHEET_MAX, True, " ({})", _utf16_units)
    return names


def sheet_continuation(name: str, part: int, taken: set[str]) -> str:
    """Name of the ``part``-th sheet (2, 3, …) of a tag too long for one sheet."""
    suffix = f" #{part}"
    base = _head(name, SHEET_MAX - len(suffix), _utf16_units) + suffix
    return _uniquify(base, taken, SHEET_MAX, True, "-{}", _utf16_units)


def _utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogateescape"))


def file_names(texts: Iterable[str]) -> dict[str, str]:
    """Map each text (a tag) to a file name stem that file systems take: no spaces, no
    characters Windows refuses, not a device name (``CON``), at most ``FILE_MAX`` bytes,
    unique ignoring case (as file systems on Windows and macOS compare names)."""
    taken: set[str] = set()
    names: dict[str, str] = {}
    for text in texts:
        clean = (_FILE_BAD.sub("_", text).strip(" .") or "tag").replace(" ", "_")
        if clean.split(".")[0].lower() in _WINDOWS_DEVICES:
            clean += "_"
        short = _shorten(clean, FILE_MAX, "~", _utf8_bytes)
        names[text] = _uniquify(short, taken, FILE_MAX, True, "_{}", _utf8_bytes)
    return names


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
