"""What the ``tbexport`` command sets up before anything else is imported."""

from __future__ import annotations

import sys
from types import TracebackType

__all__ = ["quiet_interrupts"]


def quiet_interrupts() -> None:
    """A Ctrl-C while the command starts (its imports take half a second) ends it as
    one during the export does: quietly, with the shell's 130, not with a traceback.

    (The command's own handler, set once it runs, takes over from there.)
    """
    shown = sys.excepthook

    def hook(
        kind: type[BaseException], error: BaseException, traceback: TracebackType | None
    ) -> None:
        if issubclass(kind, KeyboardInterrupt):
            return  # Python then ends with SIGINT's status, as an interrupted program does
        shown(kind, error, traceback)

    sys.excepthook = hook
