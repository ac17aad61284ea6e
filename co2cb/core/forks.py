"""Forked children drop their parent's trackers, so that a child never writes into its parent's record.

``os.fork()`` (a ``multiprocessing`` worker with the fork start method, a data loader's worker) copies
a running :class:`~co2cb.Tracker` into the child with its exit handler and its record file: at exit the
child would close the run and write a run window and a summary into the parent's live record.
:func:`watch` keeps every running tracker in a weak set; in a forked child each is told to drop its run
(``drop_in_child``) before the child's code goes on.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol


class Forkable(Protocol):
    """What :func:`watch` needs of a tracker."""

    def drop_in_child(self) -> None:
        """Forget the parent's run in a forked child: write nothing, stop nothing at exit."""


_running: weakref.WeakSet[Forkable] = weakref.WeakSet()


def watch(tracker: Forkable) -> None:
    """Drop ``tracker``'s run in any child forked while it runs."""
    _running.add(tracker)


def unwatch(tracker: Forkable) -> None:
    """``tracker`` stopped: nothing to drop in a child any more."""
    _running.discard(tracker)


def _in_child() -> None:
    for tracker in list(_running):
        tracker.drop_in_child()
    _running.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_in_child)
