"""pyxen.types: the shared shutdown reasons, lifecycle actions and state letters."""

import pytest

from pyxen.types import LifecycleAction, ShutdownReason, state_letters


def test_reasons():
    assert [r.xl_letter for r in ShutdownReason] == list("-rscwS")
    assert ShutdownReason.from_code(3) is ShutdownReason.CRASH
    assert ShutdownReason.from_code(77) is None and ShutdownReason.from_code(None) is None
    assert ShutdownReason.from_label("soft_reset") is ShutdownReason.SOFT_RESET
    assert ShutdownReason.from_label("bogus") is None
    assert ShutdownReason.WATCHDOG.label == "watchdog"


@pytest.mark.parametrize("text,want", [
    ("destroy", LifecycleAction.DESTROY), ("rename-restart", LifecycleAction.RESTART_RENAME),
    ("restart_rename", LifecycleAction.RESTART_RENAME), (" Preserve ", LifecycleAction.PRESERVE),
    ("coredump-destroy", LifecycleAction.COREDUMP_DESTROY)])
def test_actions_from_xl(text, want):
    assert LifecycleAction.from_xl(text) is want


def test_one_type_for_every_layer():
    """ctrl, light, config and guest report the same classes (not look-alikes)."""
    import pyxen.config as config
    import pyxen.ctrl as ctrl
    import pyxen.guest as guest
    import pyxen.light as light
    assert ctrl.ShutdownReason is light.ShutdownReason is ShutdownReason
    assert config.ShutdownAction is guest.Action is LifecycleAction
    assert LifecycleAction("rename-restart") is LifecycleAction.RESTART_RENAME
    assert guest.BuildSpec(name="g", kernel="/k", on_reboot="rename-restart").validated() \
        .on_reboot is LifecycleAction.RESTART_RENAME


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
