"""The real programs some tests open outputs in (pdflatex, pdftotext).

Absent, such a test is skipped with the reason, except under ``.ci/run``: it sets
``TBEXPORT_REQUIRE_PROGRAMS`` after installing them, so that a test skipped there
fails instead of passing unseen.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require(program: str) -> str:
    """The program's path; skip the test without it (fail where CI requires it)."""
    found = shutil.which(program)
    if found is None:
        if os.environ.get("TBEXPORT_REQUIRE_PROGRAMS"):
            pytest.fail(f"{program} is not installed, and .ci/run requires it")
        pytest.skip(f"{program} is not installed")
    return found
