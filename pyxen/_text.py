"""Printing values dom0 did not write itself (anything a guest can write in xenstore, error
texts that quote such values) without letting them drive the terminal."""

from __future__ import annotations


def printable(value: str | bytes | None) -> str:
    """``value`` with every character that is not printable (C0/C1 controls such as ESC,
    DEL, format characters such as bidi overrides, line and paragraph separators, bytes
    that are not UTF-8) written as a ``\\xNN`` / ``\\uNNNN`` escape, so that printing it
    cannot move the cursor, clear the screen or change the terminal's settings. Printable
    text (spaces and non-ASCII letters included) is kept as is. None gives ``""``."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    if value.isprintable():
        return value
    out = []
    for ch in value:
        o = ord(ch)
        if ch.isprintable():
            out.append(ch)
        elif 0xDC80 <= o <= 0xDCFF:          # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        elif o < 0x100:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    return "".join(out)
