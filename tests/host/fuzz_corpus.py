"""Every input that ever broke a pyxen parser: ``test_fuzz.py`` replays each case through
its fuzz target (``fuzz.py``) in a child process, where it must now give the right result
or the parser's typed error. ``python -m tests.host.fuzz --save`` appends what a campaign
finds (a ``CORPUS.append(...)`` line at the end of this file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Case:
    target: str
    value: Any
    note: str = ""


_CFG = "fuzz.cfg"

CORPUS: list[Case] = [
    # --- libxlutil's flex disk lexer ---------------------------------------------------
    Case("parse_disk", "vdev=xvda,target=/" + "a" * 16400,
         "heap overflow (malloc(): invalid size): yy_state_buf holds 16386 states"),
    Case("parse_disk", "a" * 16400, "the same overflow through a positional parameter"),
    Case("parse_disk", " " + "a" * 16400,
         "the same through the whitespace rule's trailing context"),
    Case("parse_disk", "phy:/" + "x" * 20000 + ",xvda,w", "the same through a deprecated prefix"),
    Case("parse_disk", "vdev=xvda,target=/" + "a" * 4077, "just under DISK_SPEC_MAX: parses"),
    Case("parse_disk", "=\n", "exit(2): flex scanner jammed (LEXERR state, empty line)"),
    Case("parse_disk", "phy:/x,xvda,w,=\nx", "exit(2) after good parameters"),
    Case("parse_disk", " =\n", "exit(2) after whitespace"),
    Case("parse_disk", "vdev=xvda,target=/safe.img\0,access=ro",
         "NUL: C saw 'target=/safe.img' and the disk came back read-write"),
    Case("parse_disk", None, "AttributeError"),
    Case("parse_disk", 5, "AttributeError"),
    Case("parse_disk", b"phy:/dev/x,xvda,w", "bytes are a spec"),
    Case("parse_disk", "\udcff,xvda,w", "undecodable byte in a target"),
    Case("parse_disk", "\ud800,xvda,w", "UnicodeEncodeError (a lone surrogate)"),
    Case("parse_string", ("name='a'\ndisk=['=\\n']\n", _CFG), "exit(2) from a config's disk="),
    Case("parse_string", ("name='a'\ndisk=['vdev=xvda,target=/" + "a" * 16400 + "']\n", _CFG),
         "heap overflow from a config's disk="),
    # --- config text and files ---------------------------------------------------------
    Case("parse_file", ("dir",), "exit(2): input in flex scanner failed (EISDIR)"),
    Case("parse_file", ("dev", "/dev/zero"), "hang in C, deaf to Ctrl-C"),
    Case("parse_file", ("fifo",), "hang in fopen of a FIFO"),
    Case("parse_file", ("symlink-fifo",), "the same through a symlink"),
    Case("parse_file", ("socket",), "a socket"),
    Case("parse_file", ("nulpath",), "real.cfg\\0.d/other.cfg parsed real.cfg"),
    Case("parse_file", ("file", b"name='a\0b'\n"),
         "abort: xlu__cfgl_dequote assertion on a NUL in a quoted string"),
    Case("parse_file", ("file", b"name='a'\nkernel='x\\101y'\n"), "octal escape dropped"),
    Case("parse_file", ("sparse", (1 << 20) + 1), "over CONFIG_MAX"),
    Case("parse_file", ("proc", "/proc/self/mem"), "EIO on read"),
    Case("parse_file", ("badpath", "\ud800"), "UnicodeEncodeError from os.fsencode"),
    Case("parse_file", 3, "TypeError from os.fspath"),
    Case("parse_string", ("name='a'\nmemory=9223372036854775807\n", _CFG),
         "accepted: kB overflow 64 bits"),
    Case("parse_string", ("name='a'\nvcpus=2000000000\n", _CFG),
         "accepted: to_libxl_json built a two-billion-element list"),
    Case("parse_string", ("name='a'\ntype='hvm'\nvcpus=129\n", _CFG), "over HVM_MAX_VCPUS"),
    Case("parse_string", ("name='a'\nx=" + "[" * 1000 + "]" * 1000 + "\n", _CFG),
         "RecursionError in _Reader._list"),
    Case("parse_raw", ("name='a'\nx=" + "[" * 9000 + "]" * 9000 + "\n", _CFG),
         "RecursionError, and near bison's YYMAXDEPTH"),
    Case("parse_string", ("name='a'\nkernel='x\\101y'\n", _CFG),
         "silently 'xy': libxlutil parses octal escapes but drops the character"),
    Case("parse_string", ("name='a'\nkernel='x\\1 5y'\n", _CFG), "the same, strtoul's blanks"),
    Case("parse_string", ("name='a'\nkernel='x\\\\101y'\n", _CFG), "an escaped backslash: fine"),
    Case("parse_string", ("name='a'\nuuid='00000000-0000-0000-0000-000000000001\\n'\n", _CFG),
         "re.match with $ took a trailing newline"),
    Case("parse_string", ("name='a'\ntype='hvm'\nboot='c\\n'\n", _CFG), "the same for boot="),
    Case("parse_string", ("name='a'\ntype='hvm'\nvncdisplay=70000\n", _CFG),
         "port 5900 + 70000"),
    Case("parse_string", ("name='a'\n", "a:12: b"), "a file name with :12: in it"),
    Case("parse_string", ("name='a'\n", "\ud800"), "UnicodeEncodeError from the file name"),
    Case("parse_string", ("name='a'\n", None), "AttributeError from the file name"),
    Case("parse_string", ("name='a'\n" + "pci=1\n" * 170000, _CFG),
         "minutes: listing libxlutil's settings walks its list once per setting"),
    Case("parse_string", ("name='a'\n" + "".join(f"k{i}+=1\n" for i in range(20000)), _CFG),
         "quadratic in C: each += of a new key walks all settings"),
    Case("parse_string", ("name='a'\nextra='" + "a" * 500000 + "'\n" + "extra+=''\n" * 4000,
                          _CFG), "gigabytes: each += keeps a copy of the joined string"),
    Case("parse_string", ("name='a'\npci=[" + "1," * 250000 + "]\n" + "pci+=[]\n" * 4000,
                          _CFG), "gigabytes: each += of a list keeps a new array"),
    Case("parse_string", ("name='a'\npci=[" + "1," * 100000 + "]\n", _CFG),
         "a long list (a second, not a hang)"),
    Case("parse_string", (5, _CFG), "bytes(5) made five NULs"),
    Case("parse_string", ("a" * ((1 << 20) + 1), _CFG), "over CONFIG_MAX"),
    # --- vifs ------------------------------------------------------------------------
    Case("parse_nic", "rate=\udcff", "UnicodeEncodeError (non-ASCII rate)"),
    Case("parse_nic", "rate=\u0661Mb/s", "non-ASCII digits"),
    Case("parse_nic", "devid=-1", "accepted: the vif was invisible to list and detach"),
    Case("parse_nic", "devid=0x10", "int(v, 0) took hex (xl: 0)"),
    Case("parse_nic", "mtu=1_500", "int() took an underscore"),
    Case("parse_nic", "devid=99999999999999", "over a C int"),
    Case("parse_nic", "rate=100b/s", "0 bytes per interval: no limit at all"),
    Case("parse_nic", "rate=018Mb/s", "strtoull(.., 0): octal 01, one byte per second"),
    Case("parse_nic", "rate=010Mb/s", "octal: 8 Mb/s"),
    Case("parse_nic", "rate=10Mb/s@010ms", "octal interval: 8 ms"),
    Case("parse_nic", "netdev=eth0", "mapped to bridge=; xl maps it to gatewaydev="),
    Case("parse_nic", "mac=00:16:3e:00:00:01\n", "a trailing newline"),
    Case("parse_nic", None, "AttributeError"),
    # --- vdev / devid ------------------------------------------------------------------
    Case("vdev", "xvda\n", "accepted: re.match with $"),
    Case("vdev", "010", "ValueError from int('010', 0); libxl reads octal 8"),
    Case("vdev", "d010p1", "libxl's sscanf %i reads disk 8"),
    Case("vdev", "\u0661", "a Unicode digit"),
    Case("vdev", "xvd" + "z" * 5000, "long"),
    Case("vdev", None, "not a str"),
    Case("devid", (3 << 8) | 128, "named hdc, which is devid 22<<8"),
    Case("devid", (1 << 28) | 0x11, "named xvdb1, which is devid 202<<8|0x11"),
    Case("devid", -1, "a negative devid"),
    Case("devid", "5", "not an int"),
    # --- cpu lists, memory sizes, xenstore, uuids ----------------------------------------
    Case("cpus", ("1_0", 16), "int() took an underscore"),
    Case("cpus", ("\u0661", 4), "a Unicode digit"),
    Case("cpus", (None, 4), "str(None)"),
    Case("cpus", ("1" * 5000, 4), "int() refuses more than 4300 digits (ValueError)"),
    Case("mem", "\u0661\u0662", "\\d took Unicode digits"),
    Case("mem", "9" * 30 + "t", "over int64 kB"),
    Case("mem", None, "TypeError"),
    Case("xs_path", (b"@\xff", True), "UnicodeDecodeError in the special-path check"),
    Case("xs_path", (("@", "bytearray", b"/a/b"), False), "unhashable bytearray in the cache"),
    Case("xs_path", (5, False), "TypeError, not a PyxenError"),
    Case("xs_perms", "r\u0661", "a Unicode digit as a domid"),
    Case("xs_perms", "r010", "libxenstore reads octal 8, xenstore-chmod 10"),
    Case("xs_perms", "b65536", "over domid_t"),
    Case("xs_perms", None, "AttributeError"),
    Case("uuid", "+" + "1" * 31, "int(.., 16) took a sign"),
    Case("uuid", "\u0661" * 32, "Unicode digits"),
    Case("uuid", 5, "str(5)"),
]
