"""The points protobuf decodes, gathered in record order, and the flags of the
scalars-plugin rules that both readers attach to every point (the C scanner sets the
same flags: ``csrc/events.c``).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from tbexport.model import HParam

__all__ = ["HAS_VALUE", "PLAIN", "PLUGIN_OTHER", "PLUGIN_SCALARS", "SIMPLE", "Points"]

# Point flags (as in csrc/events.c): what the scalars-plugin rules need to know of a point.
HAS_VALUE, PLUGIN_SCALARS, PLUGIN_OTHER, SIMPLE = 1, 2, 4, 8
PLAIN = SIMPLE | HAS_VALUE  # a simple_value: always a scalar


@dataclass
class Points:
    """The points decoded by protobuf, in record order, and what else those records said.

    With the C scanner these are the points of the records it handed over; each
    carries ``before``, how many of the scanner's points precede its record, which
    places it among them.
    """

    tag_ids: dict[str, int] = field(default_factory=dict)
    tags: array[int] = field(default_factory=lambda: array("i"))
    steps: array[int] = field(default_factory=lambda: array("q"))
    wall_times: array[float] = field(default_factory=lambda: array("d"))
    values: array[float] = field(default_factory=lambda: array("d"))
    flags: array[int] = field(default_factory=lambda: array("b"))  # as the C scanner's
    before: array[int] = field(default_factory=lambda: array("q"))
    # purge_step restarts: (points of the whole file before the restart, step)
    purges: list[tuple[int, int]] = field(default_factory=list)
    hparams: dict[str, HParam] = field(default_factory=dict)

    def add(
        self, tag: str, step: int, wall_time: float, number: float, before: int, flags: int
    ) -> None:
        """One point decoded by protobuf, after ``before`` points of the C scanner."""
        self.tags.append(self.tag_ids.setdefault(tag, len(self.tag_ids)))
        self.steps.append(step)
        self.wall_times.append(wall_time)
        self.values.append(number)
        self.flags.append(flags)
        self.before.append(before)

    def restart(self, step: int, before: int) -> None:
        """A purge_step restart, after ``before`` points of the C scanner."""
        self.purges.append((before + len(self.steps), step))
