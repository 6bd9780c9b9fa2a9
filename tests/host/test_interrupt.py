"""pyxen._interrupt: SIGINT held across a block and delivered after it, with real signals."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from pyxen import _interrupt


def sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_sigint_inside_is_delivered_after_the_block():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with _interrupt.deferred_sigint():
            sigint()
            for _ in range(1000):      # the handler has had every chance to run by now
                pass
            done.append("block finished")
    assert done == ["block finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_no_sigint_no_exception_and_handler_restored():
    before = signal.getsignal(signal.SIGINT)
    with _interrupt.deferred_sigint():
        pass
    assert signal.getsignal(signal.SIGINT) is before


def test_nested_blocks_deliver_once_at_the_outermost():
    order = []
    with pytest.raises(KeyboardInterrupt):
        with _interrupt.deferred_sigint():
            with _interrupt.deferred_sigint():
                sigint()
                order.append("inner")
            order.append("outer")      # the inner block handed it to the outer one
    assert order == ["inner", "outer"]


def test_custom_handler_is_called_after_the_block():
    calls = []
    old = signal.signal(signal.SIGINT, lambda s, f: calls.append(s))
    try:
        with _interrupt.deferred_sigint():
            sigint()
            assert calls == []
        assert calls == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, old)


def test_ignored_sigint_stays_ignored():
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with _interrupt.deferred_sigint():
            sigint()
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, old)


def test_off_the_main_thread_it_does_nothing():
    errors = []

    def body() -> None:
        try:
            with _interrupt.deferred_sigint():
                pass
        except BaseException as e:  # noqa: BLE001 - reported to the main thread
            errors.append(e)
    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert errors == []


def test_point_calls_the_hook_only_when_set():
    seen = []
    _interrupt.point("a")
    _interrupt.FAULT = seen.append
    try:
        _interrupt.point("b")
    finally:
        _interrupt.FAULT = None
    _interrupt.point("c")
    assert seen == ["b"]
