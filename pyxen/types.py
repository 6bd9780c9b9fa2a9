"""The types several layers report, defined once.

ctrl (libxenctrl), light (libxl), guest (the direct builder), devices and config all speak
of the same things: why a domain shut down, what to do about it, a domain's state letters.
Each is defined here, and each layer re-exports it under its old name.
"""

from __future__ import annotations

import enum

__all__ = ["ShutdownReason", "LifecycleAction", "state_letters"]


class ShutdownReason(enum.IntEnum):
    """SHUTDOWN_* (xen/sched.h, the same numbers as libxl_shutdown_reason): why a domain
    shut down, or what to ask it to do. A code pyxen does not know stays an int (shown as
    ``?``)."""

    POWEROFF = 0
    REBOOT = 1
    SUSPEND = 2
    CRASH = 3
    WATCHDOG = 4
    SOFT_RESET = 5

    @property
    def xl_letter(self) -> str:
        """The fifth letter of ``xl list``'s State column for a domain shut down so."""
        return "-rscwS"[self]

    @property
    def label(self) -> str:
        """libxl's name of the reason (``libxl_shutdown_reason_to_string``): poweroff,
        reboot, suspend, crash, watchdog, soft_reset."""
        return self.name.lower()

    @classmethod
    def from_code(cls, code: int | None) -> "ShutdownReason | None":
        """The reason for a SHUTDOWN_* code; None for one outside 0..5."""
        try:
            return cls(code) if code is not None else None
        except ValueError:
            return None

    @classmethod
    def from_label(cls, text: str) -> "ShutdownReason | None":
        """The reason libxl's name stands for; None for another."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            return None


class LifecycleAction(str, enum.Enum):
    """What to do when a domain powers off, reboots or crashes: libxl_action_on_shutdown
    (its values are libxl's names); ``from_xl`` takes xl.cfg's spellings and ``xl`` gives
    them back (``rename-restart``)."""

    DESTROY = "destroy"
    RESTART = "restart"
    RESTART_RENAME = "restart_rename"
    PRESERVE = "preserve"
    COREDUMP_DESTROY = "coredump_destroy"
    COREDUMP_RESTART = "coredump_restart"
    SOFT_RESET = "soft_reset"
    RENAME_RESTART = "restart_rename"      # xl.cfg's order of the words (an alias)

    @classmethod
    def _missing_(cls, value: object) -> "LifecycleAction | None":
        """``LifecycleAction("rename-restart")``: xl.cfg's spellings are accepted too."""
        if isinstance(value, str):
            t = value.strip().lower()
            t = {"rename-restart": "restart_rename"}.get(t, t).replace("-", "_")
            for m in cls:
                if m.value == t:
                    return m
        return None

    @classmethod
    def from_xl(cls, text: "str | LifecycleAction") -> "LifecycleAction":
        """The action an xl.cfg value names (``rename-restart``, ``coredump-destroy``,
        libxl's ``restart_rename``, ...); ValueError for another."""
        return text if isinstance(text, LifecycleAction) else cls(str(text))

    @property
    def xl(self) -> str:
        """xl.cfg's spelling (``rename-restart``, ``coredump-destroy``, ...)."""
        if self is LifecycleAction.RESTART_RENAME:
            return "rename-restart"
        return self.value.replace("_", "-")


def state_letters(*, running: bool, blocked: bool, paused: bool, shutdown: bool,
                  reason: ShutdownReason | int | None, dying: bool) -> str:
    """``xl list``'s six State letters: r b p s, the shutdown reason's letter (only while
    shut down), d."""
    if shutdown:
        r = reason if isinstance(reason, ShutdownReason) else ShutdownReason.from_code(reason)
        why = r.xl_letter if r is not None else "?"
    else:
        why = "-"
    return "".join(("r" if running else "-", "b" if blocked else "-", "p" if paused else "-",
                    "s" if shutdown else "-", why, "d" if dying else "-"))
