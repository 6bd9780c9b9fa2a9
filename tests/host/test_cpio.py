"""The lab's initramfs writer produces archives the kernel's newc reader accepts."""

import stat

from pyxen.lab import cpio


def test_round_trip():
    entries = [cpio.Entry.dir("bin"),
               cpio.Entry.file("bin/busybox", b"\x7fELF" + b"x" * 13, 0o755),
               cpio.Entry.symlink("bin/sh", "busybox"),
               cpio.Entry.file("init", b"#!/bin/sh\n", 0o755)]
    back = cpio.read(cpio.write_gz(entries))
    assert [(e.name, e.mode, e.data) for e in back] == [(e.name, e.mode, e.data) for e in entries]


def test_alignment_and_trailer():
    blob = cpio.write([cpio.Entry.file("a", b"123")])
    assert blob.startswith(b"070701")
    assert len(blob) % 4 == 0
    assert b"TRAILER!!!" in blob
    assert stat.S_ISREG(cpio.read(blob)[0].mode)


def test_rejects_reserved_name():
    import pytest
    with pytest.raises(ValueError):
        cpio.write([cpio.Entry.file("TRAILER!!!", b"")])
