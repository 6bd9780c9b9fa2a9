"""Interrupt safety: SIGINT deferred across the few spots where a Ctrl-C would lose track of
something C just made (a domid, a qemu pid, a bound loop device) or cut a rollback short.

``with deferred_sigint():`` on the main thread records a SIGINT that arrives inside the block
and delivers it (to the handler that was installed before, normally Python's, which raises
KeyboardInterrupt) once the block is left. Off the main thread it does nothing: Python runs
signal handlers on the main thread only, so no other thread sees a KeyboardInterrupt.

``point(name)`` marks a step for the interrupt-at-every-step tests: a test sets ``FAULT`` to
a callable that raises (or sends this process SIGINT) at the step it names. Without a hook
it costs one global lookup.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType

#: test hook: called with each step's name by :func:`point`
FAULT: Callable[[str], None] | None = None


def point(name: str) -> None:
    """A step boundary the fault-injection tests can interrupt."""
    hook = FAULT
    if hook is not None:
        hook(name)


class deferred_sigint:
    """Hold SIGINT for the duration of the block; deliver it after (see the module doc)."""

    def __init__(self) -> None:
        self._active = False
        self._pending = False
        self._old: Callable[[int, FrameType | None], object] | int | None = None

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self._pending = True

    def __enter__(self) -> deferred_sigint:
        if threading.current_thread() is threading.main_thread():
            try:
                self._old = signal.signal(signal.SIGINT, self._record)
                self._active = True
            except ValueError:   # not the main interpreter
                self._active = False
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._active:
            return
        self._active = False
        old = self._old
        signal.signal(signal.SIGINT, old if old is not None else signal.SIG_DFL)
        if not self._pending:
            return
        self._pending = False
        if callable(old):
            old(signal.SIGINT, None)       # Python's default handler raises KeyboardInterrupt
        elif old == signal.SIG_DFL:
            raise KeyboardInterrupt
        # SIG_IGN: the process ignores SIGINT; so do we
