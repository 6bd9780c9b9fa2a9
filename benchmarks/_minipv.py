"""A minimal x86_64 PV kernel, written as ELF bytes here (no toolchain needed): the
"minimal PV domain" of the scaling benchmark. Its Xen ELF notes satisfy libxenguest's
loader (generic loader, xen-3.0, virt base 0, hypercall page); its whole code is
``SCHEDOP_shutdown(poweroff)`` through the hypercall page, then a spin. It needs a few
pages of guest memory instead of the ~75 MiB span a distribution kernel occupies."""

from __future__ import annotations

import struct

XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_HYPERCALL_PAGE, XEN_ELFNOTE_VIRT_BASE = 1, 2, 3
XEN_ELFNOTE_PADDR_OFFSET, XEN_ELFNOTE_XEN_VERSION, XEN_ELFNOTE_GUEST_OS = 4, 5, 6
XEN_ELFNOTE_LOADER = 8
HYPERCALL_PAGE = 0x1000
SCHED_OP = 29          # __HYPERVISOR_sched_op
SCHEDOP_SHUTDOWN = 2   # arg: struct sched_shutdown { unsigned int reason; } (0 = poweroff)
REASON = 0x100


def _note(ntype: int, desc: bytes) -> bytes:
    name = b"Xen\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name), len(desc), ntype) + pad(name) + pad(desc)


def _code() -> bytes:
    c = bytearray()
    c += b"\xbf" + struct.pack("<I", SCHEDOP_SHUTDOWN)            # mov edi, 2
    rip = len(c) + 7
    c += b"\x48\x8d\x35" + struct.pack("<i", REASON - rip)        # lea rsi, [rip+reason]
    target = HYPERCALL_PAGE + SCHED_OP * 32
    c += b"\xe8" + struct.pack("<i", target - (len(c) + 5))       # call hypercall_page[29]
    c += b"\xeb\xfe"                                               # jmp .
    return bytes(c)


def kernel() -> bytes:
    seg = bytearray(0x2000)
    code = _code()
    seg[0:len(code)] = code
    struct.pack_into("<I", seg, REASON, 0)
    notes = b"".join([
        _note(XEN_ELFNOTE_GUEST_OS, b"pyxen-mini\0"),
        _note(XEN_ELFNOTE_LOADER, b"generic\0"),
        _note(XEN_ELFNOTE_XEN_VERSION, b"xen-3.0\0"),
        _note(XEN_ELFNOTE_VIRT_BASE, struct.pack("<Q", 0)),
        _note(XEN_ELFNOTE_PADDR_OFFSET, struct.pack("<Q", 0)),
        _note(XEN_ELFNOTE_ENTRY, struct.pack("<Q", 0)),
        _note(XEN_ELFNOTE_HYPERCALL_PAGE, struct.pack("<Q", HYPERCALL_PAGE)),
    ])
    phoff, phnum, note_off, seg_off = 64, 2, 0x100, 0x1000
    assert note_off + len(notes) <= seg_off
    ehdr = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, b"\0" * 7,
                       2, 62, 1, 0, phoff, 0, 0, 64, 56, phnum, 64, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 7, seg_off, 0, 0, len(seg), len(seg), 0x1000)
    note = struct.pack("<IIQQQQQQ", 4, 4, note_off, 0, 0, len(notes), len(notes), 4)
    out = bytearray(seg_off + len(seg))
    out[0:64] = ehdr
    out[phoff:phoff + 112] = load + note
    out[note_off:note_off + len(notes)] = notes
    out[seg_off:] = seg
    return bytes(out)


def write(path: str) -> str:
    with open(path, "wb") as f:
        f.write(kernel())
    return path


if __name__ == "__main__":
    import sys
    write(sys.argv[1] if len(sys.argv) > 1 else "/tmp/pyxen-minipv.elf")
