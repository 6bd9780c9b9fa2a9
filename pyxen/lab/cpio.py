"""A minimal writer for the cpio "newc" format the Linux kernel unpacks as an initramfs."""

from __future__ import annotations

import gzip
import io
import stat
from dataclasses import dataclass
from typing import Iterable

TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    """One member: ``mode`` carries the file type bits (``stat.S_IFREG | 0o755``)."""

    name: str
    mode: int
    data: bytes = b""

    @classmethod
    def dir(cls, name: str, perm: int = 0o755) -> "Entry":
        return cls(name, stat.S_IFDIR | perm)

    @classmethod
    def file(cls, name: str, data: bytes, perm: int = 0o644) -> "Entry":
        return cls(name, stat.S_IFREG | perm, data)

    @classmethod
    def symlink(cls, name: str, target: str) -> "Entry":
        return cls(name, stat.S_IFLNK | 0o777, target.encode())


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def _member(ino: int, name: str, mode: int, data: bytes) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
    header = b"070701" + b"".join(b"%08X" % f for f in fields)
    out = header + encoded + b"\0" * _pad4(len(header) + len(encoded))
    return out + data + b"\0" * _pad4(len(data))


def write(entries: Iterable[Entry]) -> bytes:
    """Serialise ``entries`` (parents before children) as an uncompressed newc archive."""
    buf = io.BytesIO()
    for ino, e in enumerate(entries, start=1):
        name = e.name.lstrip("/")
        if not name or name == TRAILER:
            raise ValueError(f"bad cpio member name {e.name!r}")
        buf.write(_member(ino, name, e.mode, e.data))
    buf.write(_member(0, TRAILER, 0, b""))
    return buf.getvalue()


def write_gz(entries: Iterable[Entry]) -> bytes:
    return gzip.compress(write(entries), compresslevel=6, mtime=0)


def read(blob: bytes) -> list[Entry]:
    """Parse a newc archive (gzip or plain) back into entries; the trailer is dropped."""
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    out: list[Entry] = []
    pos = 0
    while True:
        if blob[pos:pos + 6] != b"070701":
            raise ValueError(f"not a newc member at offset {pos}")
        f = [int(blob[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = f[1], f[6], f[11]
        pos += 110
        name = blob[pos:pos + namesize - 1].decode()
        pos += namesize + _pad4(110 + namesize)
        data = blob[pos:pos + size]
        pos += size + _pad4(size)
        if name == TRAILER:
            return out
        out.append(Entry(name, mode, data))
