"""pyxen.types: the shared shutdown reasons, lifecycle actions and state letters."""

import pytest

from pyxen.types import LifecycleAction, ShutdownReason, state_letters


def test_reasons():
    assert [r.xl_letter for r in ShutdownReason] == list("?-rscwS")
    assert ShutdownReason.from_code(3) is ShutdownReason.CRASH
    assert ShutdownReason.from_code(77) is ShutdownReason.UNKNOWN
    assert ShutdownReason.from_code(None) is ShutdownReason.UNKNOWN
    assert ShutdownReason.from_label("soft_reset") is ShutdownReason.SOFT_RESET
    assert ShutdownReason.from_label("bogus") is ShutdownReason.UNKNOWN
    assert ShutdownReason.WATCHDOG.label == "watchdog"


@pytest.mark.parametrize("text,want", [
    ("destroy", LifecycleAction.DESTROY), ("rename-restart", LifecycleAction.RESTART_RENAME),
    ("restart_rename", LifecycleAction.RESTART_RENAME), (" Preserve ", LifecycleAction.PRESERVE),
    ("coredump-destroy", LifecycleAction.COREDUMP_DESTROY)])
def test_actions_from_xl(text, want):
    assert LifecycleAction.from_xl(text) is want


def test_action_spellings():
    assert LifecycleAction.RENAME_RESTART is LifecycleAction.RESTART_RENAME
    assert LifecycleAction.RESTART_RENAME.xl == "rename-restart"
    assert LifecycleAction.COREDUMP_RESTART.xl == "coredump-restart"
    with pytest.raises(ValueError):
        LifecycleAction.from_xl("explode")


@pytest.mark.parametrize("kw,want", [
    ({}, "------"), ({"running": True}, "r-----"),
    ({"shutdown": True, "reason": ShutdownReason.REBOOT}, "---sr-"),
    ({"shutdown": True, "reason": 3, "paused": True}, "--psc-"),
    ({"shutdown": True, "reason": 99}, "---s?-"),
    ({"shutdown": False, "reason": 3, "dying": True}, "-----d")])
def test_state_letters(kw, want):
    base = dict(running=False, blocked=False, paused=False, shutdown=False, reason=None,
                dying=False)
    base.update(kw)
    assert state_letters(**base) == want
