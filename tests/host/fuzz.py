"""Fuzzing every pyxen parser, each batch in a child process.

Every parser (config files and strings, disk and vif specs, vdev/devid mapping, cpu lists,
memory sizes, xenstore paths and permission strings, uuids) is a *target*: a hypothesis
strategy of inputs and a check that the parser returned the right result or raised its
module's typed error. A batch of one target runs in a child process (this file with
``--child``), which records each input in a shared file mapping before it runs it, so a
crash, an ``exit()`` or a hang in C is reported with the input that caused it; a wrong result
or an untyped exception is shrunk and reported by hypothesis in the child.

Run from the repository root::

    python -m tests.host.fuzz                        # every target, 2000 examples each
    python -m tests.host.fuzz --examples 100000 --jobs 2 --save
    python -m tests.host.fuzz --targets parse_disk,vdev --seconds 600

``--save`` appends every input that broke something to ``fuzz_corpus.py`` (next to this
file), whose cases ``test_fuzz.py`` replays on every host test run. ``pytest tests/host``
runs a bounded campaign (PYXEN_FUZZ_EXAMPLES examples per target, 1000 by default;
PYXEN_FUZZ_SEED picks the seed, fixed by default so the run is reproducible).
"""

from __future__ import annotations

import argparse
import ast
import json
import mmap
import os
import pickle
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CORPUS_FILE = HERE / "fuzz_corpus.py"
RECORD_SIZE = 8 << 20          # the shared record: count, length, pickled input
_HDR = struct.Struct("=QQ")
DEFAULT_EXAMPLES = 2000
DEFAULT_HANG = 30.0            # seconds without a new example: a hang


# =======================================================================================
# inputs: plain data (literal_eval-able, for the corpus); "@"-tagged tuples stand for
# objects that are not (a PathLike, a bytearray, an arbitrary object)
# =======================================================================================

class _PathLike:
    def __init__(self, p: str | bytes) -> None:
        self.p = p

    def __fspath__(self) -> str | bytes:
        return self.p

    def __repr__(self) -> str:
        return f"PathLike({self.p!r})"


def materialize(x: Any) -> Any:
    """The Python object an input stands for."""
    if isinstance(x, tuple) and len(x) >= 2 and x[0] == "@":
        kind = x[1]
        if kind == "object":
            return object()
        if kind == "pathlike":
            return _PathLike(x[2])
        if kind == "bytearray":
            return bytearray(x[2])
        if kind == "memoryview":
            return memoryview(x[2])
        if kind == "set":
            return set(x[2])
        if kind == "gen":
            return (y for y in x[2])
        if kind == "exception":
            return ValueError("x")
        if kind == "type":
            return str
    if isinstance(x, tuple):
        return tuple(materialize(y) for y in x)
    if isinstance(x, list):
        return [materialize(y) for y in x]
    return x


def short(x: Any, n: int = 300) -> str:
    r = repr(x)
    return r if len(r) <= n else r[:n] + f"... ({len(r)} characters of repr)"


# =======================================================================================
# models of the C code, for "agrees with libxl" checks
# =======================================================================================

_C_SPACE = " \t\n\v\f\r"
ULONG_MAX = 2**64 - 1


def c_strtoul(s: str, base: int) -> tuple[int, int, bool]:
    """glibc strtoul(s, &end, base): (value, end index, ERANGE). end is 0 with no digits."""
    i, n = 0, len(s)
    while i < n and s[i] in _C_SPACE:
        i += 1
    neg = False
    if i < n and s[i] in "+-":
        neg, i = s[i] == "-", i + 1
    if base in (0, 16) and s[i:i + 2] in ("0x", "0X") and i + 2 < n and \
            s[i + 2] in "0123456789abcdefABCDEF":
        i, base = i + 2, 16
    elif base == 0:
        base = 8 if s[i:i + 1] == "0" else 10
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"[:base]
    j = i
    while j < n and s[j].lower() in digits and s[j].isascii():
        j += 1
    if j == i:
        return 0, 0, False
    v = int(s[i:j], base)
    if v > ULONG_MAX:
        return ULONG_MAX, j, True
    return ((-v) & ULONG_MAX if neg else v), j, False


def libxl_vdev(v: str) -> int | None:
    """libxl__device_disk_dev_number(v, NULL, NULL) (libxl_device.c), or None for -1.
    dNpM is modelled for sscanf("%i") on plain digits only (no blanks or signs)."""
    def virtdisk(prefix: str, max_index: int, max_part: int) -> tuple[int, int] | None:
        if not v.startswith(prefix):
            return None
        idx, p = -1, len(prefix)
        while p < len(v) and "a" <= v[p] <= "z":
            idx = (idx + 1) * 26 + (ord(v[p]) - 97)
            p += 1
            if idx > max_index:
                return None
        if p == len(v):
            return idx, 0
        if v[p] == "0":
            return None
        pl, end, _ = c_strtoul(v[p:], 10)
        if pl > max_part or p + end != len(v) or end == 0:
            return None
        return idx, pl

    m = re.fullmatch(r"d(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)p"
                     r"(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", v)
    dp = None
    if m:
        disk, part = (int(g, 0) if not re.fullmatch("0[0-7]+", g) else int(g, 8)
                      for g in m.groups())
        if disk < 1 << 20 and part < 256:
            dp = disk, part
    dp = dp or virtdisk("xvd", (1 << 20) - 1, 255)
    if dp:
        disk, part = dp
        if disk <= 15 and part <= 15:
            return (202 << 8) | (disk << 4) | part
        return (1 << 28) | (disk << 8) | part
    ul, end, erange = c_strtoul(v, 0)
    if not erange and end == len(v) and end and ul <= 2**31 - 1:
        return ul
    hd = virtdisk("hd", 3, 63)
    if hd:
        return ((3 if hd[0] < 2 else 22) << 8) | ((hd[0] & 1) << 6) | hd[1]
    sd = virtdisk("sd", 15, 15)
    if sd:
        return (8 << 8) | (sd[0] << 4) | sd[1]
    return None


def libxlu_rate(rate: str) -> tuple[int, int] | None:
    """xlu_vif_parse_rate (libxlu_vif.c): (bytes per interval, interval us) or None."""
    head, at, tail = rate.partition("@")
    if not head or not re.fullmatch(r"[0-9]+[GMK]?[Bb]/s", head):
        return None
    n, end, erange = c_strtoul(head, 0)
    if n == 0 or n > 2**32 - 1 or erange:
        return None
    p = head[end:]
    n *= {"G": 10**9, "M": 10**6, "K": 10**3}.get(p[:1], 1)
    if p[:1] == "b" or p[1:2] == "b":
        n //= 8
    usecs = 50000
    if at:
        if not re.fullmatch(r"[0-9]+[mu]?s?", tail):
            return None
        t, end, erange = c_strtoul(tail, 0)
        if t == 0 or t > 2**32 - 1 or erange:
            return None
        q = tail[end:]
        if q[:1] in ("s", ""):
            t *= 10**6
        elif q[:1] == "m":
            t *= 1000
        if t > 2**32 - 1:
            return None
        usecs = t
    if usecs and n > ULONG_MAX // usecs:
        return None
    return n * usecs // 10**6, usecs


# =======================================================================================
# targets
# =======================================================================================

@dataclass
class Target:
    name: str
    strategy: Callable[[], Any]     # () -> hypothesis strategy of inputs
    run: Callable[[Any], None]      # input -> None; raises on a wrong result
    weight: float = 1.0             # relative cost: fewer examples for slow targets


TARGETS: dict[str, Target] = {}


def target(name: str, weight: float = 1.0) -> Callable[[Callable[[Any], None]], Any]:
    def deco(run: Callable[[Any], None]) -> Callable[[Any], None]:
        TARGETS[name] = Target(name, STRATEGIES[name], run, weight)
        return run
    return deco


STRATEGIES: dict[str, Callable[[], Any]] = {}


def strategy(name: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    def deco(fn: Callable[[], Any]) -> Callable[[], Any]:
        STRATEGIES[name] = fn
        return fn
    return deco


def typed(exc: BaseException, cls: type, *, value_error: bool = True) -> None:
    """An exception a parser raised on purpose: its module's typed error, a PyxenError,
    a ValueError (or, for a wrong type, a TypeError), with a message."""
    from pyxen.errors import PyxenError
    if not isinstance(exc, cls) or not isinstance(exc, PyxenError):
        raise exc
    if value_error:
        assert isinstance(exc, (ValueError, TypeError)), (type(exc), exc)
    assert str(exc), type(exc)


# ---- strategies shared by several targets ---------------------------------------------

def _st() -> Any:
    from hypothesis import strategies as st
    return st


def wrong_types() -> Any:
    st = _st()
    return st.sampled_from([
        None, 0, -1, 1.5, True, [], {}, (), ["a"], {"a": 1}, 10**30,
        ("@", "object"), ("@", "set", ("a",)), ("@", "exception"), ("@", "type"),
        ("@", "gen", ("x",)),
    ])


def long_text(base: Any, alphabet: str = "a/,=\n") -> Any:
    """Texts around the sizes where C buffers end (4 KiB, 16 KiB, 1 MiB) and beyond."""
    st = _st()
    sizes = st.one_of(st.sampled_from([4080, 4090, 4095, 4096, 4097, 4100, 8192, 16370,
                                       16383, 16384, 16385, 16390, 16400, 32768, 65536]),
                      st.integers(0, 70000))
    return st.builds(lambda pre, c, n, post: pre + c * n + post, base,
                     st.sampled_from(list(alphabet) + ["ab", "a "]), sizes, base)


def noisy(base: Any, noise: str) -> Any:
    """``base`` with a few characters of ``noise`` inserted at random places."""
    st = _st()

    @st.composite
    def build(draw: Any) -> str:
        s = draw(base)
        for _ in range(draw(st.integers(0, 3))):
            i = draw(st.integers(0, len(s)))
            s = s[:i] + draw(st.sampled_from(list(noise))) + s[i:]
        return s
    return build()


def any_text(max_size: int = 80) -> Any:
    st = _st()
    return st.one_of(st.text(max_size=max_size),
                     st.text(st.characters(codec="utf-8"), max_size=max_size),
                     st.binary(max_size=max_size).map(
                         lambda b: b.decode("utf-8", "surrogateescape")))


# ---- disk specs ------------------------------------------------------------------------

DISK_WORDS = [
    "phy:/dev/vg/a", "file:/x.img", "tap:aio:/x", "tap2:tapdisk:aio:/x", "aio:/x",
    "qcow2:/x", "raw:/x", "vhd:/x", "iscsi:iqn", "nbd:h:1", "drbd:r", "ioemu:/x",
    "bogus:/x", "/dev/xvda", "/dev/loop0", "xvda", "xvdb1", "hda", "hdc:cdrom",
    "xvdc:disk", "sdq", "d1p2", "w", "r", "rw", "ro", "raw", "qcow", "", ",", ":",
    "format=raw", "format=qcow2", "format=", "format=bogus", "vdev=xvda", "vdev=",
    "access=ro", "access=rw", "access=w", "access=", "access=x", "devtype=cdrom",
    "devtype=disk", "devtype=x", "backendtype=phy", "backendtype=qdisk",
    "backendtype=tap", "backendtype=x", "backend=dom0", "script=block-x",
    "specification=xen", "specification=virtio", "specification=x", "cdrom",
    "direct-io-safe", "discard", "no-discard", "colo", "no-colo", "colo-port=7",
    "colo-port=x", "colo-host=h", "active-disk=/a", "hidden-disk=/h", "colo-export=e",
    "trusted", "untrusted", "target=/t.img", "target=", "target=/a,b:c,access=ro",
    "foo=1", "foo=", "Foo=1", "=", "==", "a=\n", "=x",
]


def disk_specs() -> Any:
    st = _st()
    words = st.sampled_from(DISK_WORDS) | st.text("abcdvx/=:,- \t\n01", max_size=8)
    seps = st.sampled_from([",", ", ", " ,", ",\n", "\n", ",\t", ""])
    return st.lists(st.tuples(words, seps), max_size=7).map(
        lambda xs: "".join(w + s for w, s in xs))


@strategy("parse_disk")
def _disk_inputs() -> Any:
    st = _st()
    structured = disk_specs()
    return st.one_of(
        structured,
        noisy(structured, "=\n,:\t \x00\x80\xff\u00e9\udcff"),
        st.text("=\n,: a/\t", max_size=12),
        any_text(),
        st.binary(max_size=60),
        long_text(st.sampled_from(["", "vdev=xvda,target=/", "/x,xvda,w,", "a", "=",
                                   "phy:/", " ", "vdev=xvda,format=raw,access=ro,"])),
        wrong_types(),
        st.sampled_from([("@", "bytearray", b"/x,xvda"), ("@", "memoryview", b"/x,xvda")]),
    )


def _no_nul(*vals: Any) -> None:
    for v in vals:
        assert v is None or (isinstance(v, str) and "\0" not in v), v


@target("parse_disk")
def _run_disk(x: Any) -> None:
    from pyxen.config import ConfigError, DiskSpec, parse_disk
    arg = materialize(x)
    try:
        d = parse_disk(arg)
    except ConfigError as e:
        typed(e, ConfigError)
        return
    assert isinstance(d, DiskSpec)
    spec = d.spec
    assert isinstance(spec, str) and d.vdev
    _no_nul(d.vdev, d.pdev_path, d.script, d.backend_domname)
    # every string libxlutil hands back is a piece of the spec (no truncation, no junk)
    assert d.vdev in spec, (d.vdev, spec)
    if d.pdev_path is not None:
        assert d.pdev_path in spec, (d.pdev_path, spec)
    if d.backend_domname is not None:
        assert d.backend_domname in spec
    js = json.loads(json.dumps(d.to_libxl_json()))
    assert DiskSpec.from_libxl_json(js) == d, (js, d)


# ---- vif specs -------------------------------------------------------------------------

VIF_KEYS = ["mac", "bridge", "netdev", "ip", "script", "vifname", "model", "rate", "type",
            "backend", "mtu", "gatewaydev", "devid", "accel", "colour", "trusted", "MAC"]
VIF_VALUES = [
    "00:16:3e:00:00:01", "00:16:3E:1:2:3", "zz:16:3e:00:00:00", "00:16:3e:00:00:01\n",
    "0:0:0:0:0:0:0", "xenbr0", "10.0.0.2", "vif-bridge", "vif-route", "e1000", "vif",
    "ioemu", "IOEMU", "vif_ioemu", "x", "", "0", "1", "-1", "1500", "68", "67", "65536",
    "2147483647", "2147483648", "4294967295", "0x10", "010", "1_0", "\u0661", " 12 ",
    "10Mb/s", "10MB/s", "1Gb/s@20ms", "100b/s", "8b/s", "64b/s@1s", "1Kb/s@1us",
    "010Mb/s", "018Mb/s", "10Mb/s@010ms", "4294967295GB/s", "4294967296B/s",
    "10Mb/s@4294967295s", "1B/s@4294s", "10Mb/s@", "@20ms", "10Mb/s@20ms@1", "\u0661Mb/s",
    "\udcffMb/s", "99999999999999999999999Mb/s", "dom0", "eth0",
]


def nic_specs() -> Any:
    st = _st()
    value = st.sampled_from(VIF_VALUES) | st.text("0123456789abcdefGMKBbs/@mu:x-", max_size=14)
    item = st.tuples(st.sampled_from(VIF_KEYS), st.sampled_from(["=", " = ", "", "=="]),
                     value).map(lambda t: "".join(t))
    return st.lists(item, max_size=6).map(",".join)


@strategy("parse_nic")
def _nic_inputs() -> Any:
    st = _st()
    structured = nic_specs()
    return st.one_of(structured, noisy(structured, ",=\n\x00 \t\u00a0\x1c"),
                     any_text(), st.binary(max_size=40), wrong_types(),
                     long_text(st.sampled_from(["", "bridge=", "rate=1", "mac=00:"]), "a,=1"))


@target("parse_nic")
def _run_nic(x: Any) -> None:
    from pyxen.config import ConfigError, NicSpec, parse_nic
    arg = materialize(x)
    try:
        n = parse_nic(arg)
    except ConfigError as e:
        typed(e, ConfigError)
        return
    assert isinstance(n, NicSpec)
    assert re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", n.mac), n.mac
    assert n.devid is None or 0 <= n.devid <= 2**31 - 1, n.devid
    assert n.mtu is None or 68 <= n.mtu <= 65535, n.mtu
    _no_nul(n.bridge, n.ip, n.script, n.vifname, n.model, n.backend, n.gatewaydev)
    if n.rate is not None:
        want = libxlu_rate(n.rate)
        assert want is not None, n.rate
        assert (n.rate_bytes_per_interval, n.rate_interval_usecs) == want, (n, want)
        assert n.rate_bytes_per_interval > 0
    else:
        assert n.rate_bytes_per_interval == n.rate_interval_usecs == 0
    json.dumps(n.to_libxl_json())


# ---- config text -----------------------------------------------------------------------

def _quote(s: str, q: str = "'") -> str:
    """A config string literal for ``s`` (libxlutil's escapes; no octal, no hex)."""
    esc = {"\\": "\\\\", q: "\\" + q, "\n": "\\n", "\t": "\\t", "\r": "\\r",
           "\a": "\\a", "\b": "\\b", "\f": "\\f", "\v": "\\v"}
    return q + "".join(esc.get(c, c) for c in s) + q


def _config_pieces() -> tuple[Any, Any]:
    """(atoms, values) of config text: numbers, quoted strings, nested lists."""
    st = _st()
    from pyxen import config
    specs = st.one_of(disk_specs(), nic_specs())
    strings = st.one_of(
        st.text(max_size=20), specs, st.sampled_from(
            ["hvm", "pv", "pvh", "destroy", "restart", "rename-restart", "c", "dc", "z",
             "qemu-xen", "qemu-xen-traditional", "qemu-dm", "/boot/vmlinuz", "x\n",
             "00000000-0000-0000-0000-000000000001", "0123456789abcdef0123456789abcdef"]))
    raw_strings = st.sampled_from([
        "'a\\101b'", "'\\1'", "'\\12'", "'\\1 5'", "'\\x41'", "'\\xZZ'", "'\\q'", "'\\\\101'",
        "'\\\\\\101'", '"\\""', "'a", "'", "''", "'\\\n'", "'#'", "'a\\'b'", '"a\'b"'])
    atoms = st.one_of(
        st.integers(-3, 300).map(str),
        st.sampled_from(["0", "1", "2", "128", "129", "8192", "8193", "0x10", "010", "08",
                         "9007199254740991", "9007199254740992", "9223372036854775807",
                         "9223372036854775808", "99999999999999999999", "1e3", "0xg",
                         "2000000000", "59635", "59636", "-1"]),
        strings.map(_quote), strings.map(lambda s: _quote(s, '"')), raw_strings)

    def nest(depth: int, inner: Any) -> str:
        return "[" * depth + inner + "]" * depth
    values = st.one_of(
        atoms,
        st.lists(atoms, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(atoms, max_size=3).map(lambda xs: "[\n " + ",\n ".join(xs) + ",\n]"),
        st.builds(nest, st.integers(1, 80), atoms | st.just("")),
    )
    keys = sorted(config._INTERPRETED | set(config.XM_KEYS_IGNORED)) + [
        "pci", "cpus", "bogus", "x.y", "a_b", "disk", "vif", "name"]
    return st.sampled_from(keys), values


@strategy("parse_string")
def _config_inputs() -> Any:
    st = _st()
    keys, values = _config_pieces()
    line = st.tuples(keys, st.sampled_from([" = ", "=", " += ", "+="]), values).map(
        lambda t: "".join(t))
    ends = st.sampled_from(["\n", ";", "\n\n", " # c\n", "\r\n", "; ", "\n#x"])
    body = st.lists(st.tuples(line, ends), max_size=10).map(
        lambda xs: "".join(a + b for a, b in xs))
    text = st.one_of(
        body.map(lambda b: "name='fz'\n" + b),
        body,
        noisy(body.map(lambda b: "name='fz'\n" + b), "'\"[],=\n\\#+;\x00\x80"),
        st.text("name=' []\n,#;+\"x0123\\-:", max_size=120),
        st.binary(max_size=200),
        any_text(200),
        long_text(st.sampled_from(["name='a'\nx='", "name='a'\n#", "x=[", "", "name='"]),
                  "a[',\n"),
        st.builds(lambda line, n: "name='a'\n" + line * n,
                  st.sampled_from(["pci=1\n", "extra+='aaaa'\n", "a.b+=1\n", "pci+=[1]\n",
                                   "disk+=['phy:/x,xvda,w']\n", "x=[[[[\n", "#\n"]),
                  st.integers(0, 200000)),
        wrong_types(),
        st.sampled_from([("@", "bytearray", b"name='a'\n"), ("@", "memoryview", b"name='a'")]),
    )
    filename = st.one_of(st.just("fuzz.cfg"), st.sampled_from(
        ["", "a\0b", "\ud800", "\udcff.cfg", "x:1: y", None, 5, ("@", "pathlike", "p")]))
    return st.tuples(text, filename)


def _check_config(cfg: Any) -> None:
    from pyxen.config import HVM_MAX_VCPUS, MEMORY_MAX_MIB, PV_MAX_VCPUS, DomainConfig, DomainType
    assert isinstance(cfg, DomainConfig) and cfg.name
    limit = PV_MAX_VCPUS if cfg.type == DomainType.PV else HVM_MAX_VCPUS
    for v in (cfg.vcpus, cfg.maxvcpus):
        assert v is None or 1 <= v <= limit, v
    for v in (cfg.memory, cfg.maxmem):
        assert v is None or 1 <= v <= MEMORY_MAX_MIB, v
    js = json.loads(json.dumps(cfg.to_libxl_json()))
    assert DomainConfig.from_libxl_json(js, like=cfg) == cfg


@target("parse_string", weight=2.0)
def _run_config(x: Any) -> None:
    from pyxen.config import ConfigError, parse_string
    text, filename = materialize(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cfg = parse_string(text, filename=filename)
        except ConfigError as e:
            typed(e, ConfigError)
            if isinstance(filename, str) and isinstance(text, (str, bytes)) and \
                    "\0" not in filename and filename.isascii():
                assert e.file is None or e.file == filename, (e.file, filename)
            return
    _check_config(cfg)


@strategy("parse_raw")
def _raw_inputs() -> Any:
    return _config_inputs()


@target("parse_raw", weight=1.5)
def _run_raw(x: Any) -> None:
    from pyxen.config import LIST_DEPTH_MAX, ConfigError, parse_raw
    text, filename = materialize(x)
    try:
        raw = parse_raw(text, filename=filename)
    except ConfigError as e:
        typed(e, ConfigError)
        return

    def depth(v: Any) -> int:
        if isinstance(v, str):
            return 0
        assert isinstance(v, list), v
        return 1 + max((depth(y) for y in v), default=0)
    for k, (v, ln) in raw.items():
        assert re.fullmatch(r"[a-z][._0-9a-z]*", k), k
        assert isinstance(ln, int) and ln >= 1
        assert depth(v) <= LIST_DEPTH_MAX


# ---- model configs: what was written must come back ------------------------------------

@strategy("config_model")
def _model_inputs() -> Any:
    st = _st()
    text = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=30)
    return st.fixed_dictionaries(
        {"name": text.filter(bool), "type": st.sampled_from(["pv", "pvh", "hvm", None])},
        optional={"kernel": text, "ramdisk": text, "cmdline": text, "bootloader": text,
                  "memory": st.integers(-2, 2**64), "vcpus": st.integers(-2, 10000),
                  "maxvcpus": st.integers(-2, 10000), "maxmem": st.integers(-2, 2**64),
                  "quote": st.sampled_from(["'", '"'])})


@target("config_model")
def _run_model(m: dict) -> None:
    """A config written from known values parses back to exactly those values, or is
    refused for a value out of Xen's bounds."""
    from pyxen.config import HVM_MAX_VCPUS, MEMORY_MAX_MIB, PV_MAX_VCPUS, ConfigError, parse_string
    q = m.get("quote", "'")
    lines = [f"name = {_quote(m['name'], q)}"]
    if m["type"]:
        lines.append(f"type = {_quote(m['type'], q)}")
    for k in ("kernel", "ramdisk", "cmdline", "bootloader"):
        if k in m:
            lines.append(f"{k} = {_quote(m[k], q)}")
    for k in ("memory", "vcpus", "maxvcpus", "maxmem"):
        if k in m:  # a negative number only lexes quoted
            lines.append(f"{k} = {m[k]}" if m[k] >= 0 else f"{k} = '{m[k]}'")
    text = "\n".join(lines) + "\n"
    vlimit = PV_MAX_VCPUS if m["type"] in (None, "pv") else HVM_MAX_VCPUS
    bad = [k for k in ("memory", "maxmem") if k in m and not 1 <= m[k] <= MEMORY_MAX_MIB]
    bad += [k for k in ("vcpus", "maxvcpus") if k in m and not 1 <= m[k] <= vlimit]
    if "maxvcpus" in m and "vcpus" in m and m["maxvcpus"] < m["vcpus"] and not bad:
        bad.append("maxvcpus")
    if "maxmem" in m and "memory" in m and m["maxmem"] < m["memory"] and not bad:
        bad.append("maxmem")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cfg = parse_string(text, filename="model.cfg")
        except ConfigError as e:
            typed(e, ConfigError)
            assert e.key in bad, (str(e), m, text)
            return
    assert not bad, (bad, text)
    assert cfg.name == m["name"]
    for k in ("kernel", "ramdisk", "cmdline", "bootloader"):
        if k in m and not (k == "kernel" and m["type"] == "hvm"):
            assert getattr(cfg, k) == m[k], (k, getattr(cfg, k), m[k], text)
    for k in ("memory", "vcpus"):
        if k in m:
            assert getattr(cfg, k) == m[k]


# ---- config files ----------------------------------------------------------------------

@strategy("parse_file")
def _file_inputs() -> Any:
    st = _st()
    content = st.one_of(
        st.sampled_from([b"name='a'\n", b"name='a'\nmemory=64\nvcpus=2\n", b"", b"\0",
                         b"name='a\0b'\n", b"name='a'\n# end", b"name='a'\nkernel='\\101'\n",
                         b"name='a'\ndisk=['=\n']\n", b"\xff\xfe", b"name='\xff'\n"]),
        st.binary(max_size=100),
        _config_inputs().map(lambda t: t[0]).filter(lambda t: isinstance(t, (str, bytes)))
        .map(lambda t: t.encode("utf-8", "surrogateescape") if isinstance(t, str) else t))
    return st.one_of(
        st.tuples(st.just("file"), content),
        st.tuples(st.just("pathlike"), content),
        st.tuples(st.just("bytespath"), content),
        st.sampled_from([("dir",), ("fifo",), ("socket",), ("missing",), ("symlink-dir",),
                         ("symlink-fifo",), ("dangling",), ("dev", "/dev/null"),
                         ("dev", "/dev/zero"), ("dev", "/dev/full"), ("dev", "/dev/urandom"),
                         ("proc", "/proc/self/status"), ("proc", "/proc/self/mem"),
                         ("proc", "/proc/self/maps"), ("proc", "/proc/self/cmdline"),
                         ("sparse", 1 << 20), ("sparse", (1 << 20) + 1), ("sparse", 1 << 31),
                         ("nulpath",), ("longname",), ("longpath",), ("badpath", "\ud800"),
                         ("badpath", ""), ("badpath", b"\xff/x")]),
        wrong_types(),
    )


@target("parse_file", weight=2.0)
def _run_file(x: Any) -> None:
    from pyxen.config import ConfigError, parse_file, parse_string
    with tempfile.TemporaryDirectory(prefix="pyxen-fuzz-") as tmp:
        path: Any = os.path.join(tmp, "dom.cfg")
        content = None
        kind = x[0] if isinstance(x, tuple) and x and isinstance(x[0], str) else None
        if kind in ("file", "pathlike", "bytespath"):
            content = x[1]
            with open(path, "wb") as f:
                f.write(content)
            if kind == "pathlike":
                path = _PathLike(path)
            elif kind == "bytespath":
                path = os.fsencode(path)
        elif kind == "dir":
            os.mkdir(path)
        elif kind in ("fifo", "symlink-fifo"):
            os.mkfifo(os.path.join(tmp, "fifo"))
            os.symlink(os.path.join(tmp, "fifo"), path)
            if kind == "fifo":
                path = os.path.join(tmp, "fifo")
        elif kind == "socket":
            s = socket.socket(socket.AF_UNIX)
            s.bind(path)
            s.close()
        elif kind == "missing":
            pass
        elif kind == "symlink-dir":
            os.symlink(tmp, path)
        elif kind == "dangling":
            os.symlink(os.path.join(tmp, "nowhere"), path)
        elif kind in ("dev", "proc"):
            path = x[1]
        elif kind == "sparse":
            with open(path, "wb") as f:
                f.truncate(x[1])
        elif kind == "nulpath":
            with open(path, "wb") as f:
                f.write(b"name='real'\n")
            path = path + "\0.d/other.cfg"
        elif kind == "longname":
            path = os.path.join(tmp, "n" * 300)
        elif kind == "longpath":
            path = "/" + "a/" * 3000
        elif kind == "badpath":
            path = x[1]
        else:
            path = materialize(x)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cfg = parse_file(path)
        except ConfigError as e:
            typed(e, ConfigError)
            if content is not None:
                # the same bytes as a string: the same error
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        parse_string(content, filename=os.fsdecode(os.fspath(path)))
                except ConfigError as e2:
                    assert e2.message == e.message and e2.line == e.line, (str(e)[:300],
                                                                           str(e2)[:300])
                else:
                    raise AssertionError(f"parse_file refused what parse_string took: {e}")
            return
        assert content is not None, (x, cfg)
        _check_config(cfg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert parse_string(content, filename=os.fsdecode(os.fspath(path))) == cfg


# ---- vdev / devid ----------------------------------------------------------------------

@strategy("vdev")
def _vdev_inputs() -> Any:
    st = _st()
    num = st.one_of(st.integers(0, 300).map(str), st.sampled_from(
        ["0", "00", "01", "010", "08", "15", "16", "255", "256", "1048575", "1048576",
         "0x10", "0X1f", "0x", " 1", "+1", "-1", "1 ", "\u0661", "2147483647", "2147483648",
         "4294967296", "99999999999999999999999"]))
    letters = st.text("abcdyz", min_size=0, max_size=6)
    structured = st.one_of(
        st.tuples(st.sampled_from(["xvd", "hd", "sd", "vd", "xvd"]), letters,
                  num | st.just("")).map("".join),
        st.tuples(st.just("d"), num, st.just("p"), num).map("".join),
        num,
    )
    return st.one_of(structured, noisy(structured, "\n \t\0x:"), any_text(20),
                     st.text("xvdhsap0123456789", max_size=12), wrong_types(),
                     st.integers(-5, 70000), st.binary(max_size=8))


@target("vdev")
def _run_vdev(x: Any) -> None:
    from pyxen.devices import DeviceSpecError, devid_to_vdev, vdev_to_devid
    v = materialize(x)
    try:
        n = vdev_to_devid(v)
    except DeviceSpecError as e:
        typed(e, DeviceSpecError)
        return
    assert isinstance(v, str)
    assert isinstance(n, int) and 0 <= n <= 2**31 - 1, n
    assert libxl_vdev(v) == n, (v, n, libxl_vdev(v))
    assert vdev_to_devid(devid_to_vdev(n)) == n


@strategy("devid")
def _devid_inputs() -> Any:
    st = _st()
    return st.one_of(st.integers(0, 2**31 - 1), st.integers(), st.sampled_from(
        [0, 202 << 8, (202 << 8) | 255, (3 << 8) | 128, (22 << 8) | 200, 8 << 8 | 255,
         1 << 28, (1 << 28) | 0x11, (1 << 28) | (16 << 8), (1 << 29) | 5, 2**31 - 1, 2**31,
         -1]), wrong_types())


@target("devid")
def _run_devid(x: Any) -> None:
    from pyxen.devices import DeviceSpecError, devid_to_vdev, vdev_to_devid
    n = materialize(x)
    try:
        name = devid_to_vdev(n)
    except DeviceSpecError as e:
        typed(e, DeviceSpecError)
        assert isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 2**31 - 1
        return
    assert vdev_to_devid(name) == n, (n, name)


# ---- cpu lists and memory sizes ------------------------------------------------------

@strategy("cpus")
def _cpus_inputs() -> Any:
    st = _st()
    item = st.one_of(st.integers(0, 40).map(str), st.just("all"),
                     st.tuples(st.integers(0, 40), st.integers(0, 40)).map(
                         lambda t: f"{t[0]}-{t[1]}"))
    item = st.tuples(st.sampled_from(["", "^"]), item, st.sampled_from(["", " "])).map(
        "".join)
    structured = st.lists(item, min_size=1, max_size=5).map(",".join)
    text = st.one_of(structured, noisy(structured, "-^,_ \n\u0661x"), any_text(20),
                     st.sampled_from(["1_0", "0x1", "+1", "1-", "-", "^", "0-99999999999"]),
                     wrong_types())
    return st.tuples(text, st.integers(1, 64))


def _small(digits: str) -> int:
    """int(digits), or 2**64 for more digits than int() takes (all too big anyway)."""
    d = digits.lstrip("0") or "0"
    return int(d) if len(d) < 30 else 2**64


def _cpus_model(text: str, ncpus: int) -> set[int] | None:
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip(" ")
        neg = part.startswith("^")
        body = part[1:] if neg else part
        if body == "all":
            rng = set(range(ncpus))
        elif re.fullmatch(r"[0-9]+", body):
            rng = {_small(body)}
        elif re.fullmatch(r"[0-9]+-[0-9]+", body):
            a, b = map(_small, body.split("-"))
            if b < a or b >= ncpus:
                return None
            rng = set(range(a, b + 1))
        else:
            return None
        if rng and max(rng) >= ncpus:
            return None
        out = out - rng if neg else out | rng
    return out or None


@target("cpus")
def _run_cpus(x: Any) -> None:
    from pyxen.light import LibxlInvalid, parse_cpus
    text, ncpus = materialize(x)
    try:
        got = parse_cpus(text, ncpus)
    except LibxlInvalid as e:
        typed(e, LibxlInvalid)
        if isinstance(text, str) and re.fullmatch(r"[0-9a-z^, -]*", text):
            assert _cpus_model(text, ncpus) is None, (text, ncpus, e)
        return
    assert isinstance(text, str)
    assert got and all(0 <= c < ncpus for c in got)
    assert _cpus_model(text.replace("\t", " "), ncpus) == set(got), (text, got)


@strategy("mem")
def _mem_inputs() -> Any:
    st = _st()
    structured = st.tuples(st.sampled_from(["", " "]),
                           st.integers(0, 2**70).map(str) | st.sampled_from(["", "00"]),
                           st.sampled_from(["", "b", "k", "m", "g", "t", "K", "T", "x", "kb"]),
                           ).map("".join)
    return st.one_of(structured, noisy(structured, "\n\u0661_+-"), any_text(20),
                     wrong_types())


@target("mem")
def _run_mem(x: Any) -> None:
    from pyxen.cli.light import MemorySizeError, parse_mem_kb
    text = materialize(x)
    try:
        kb = parse_mem_kb(text)
    except MemorySizeError as e:
        typed(e, MemorySizeError)
        return
    assert isinstance(text, str)
    m = re.fullmatch(r"[ \t]*([0-9]+)([bkmgt]?)[ \t]*", text.lower())
    assert m, text
    n = int(m.group(1))
    want = {"b": n >> 10, "k": n, "": n << 10, "m": n << 10, "g": n << 20,
            "t": n << 30}[m.group(2)]
    assert kb == want and 0 <= kb <= 2**63 - 1


# ---- xenstore paths and permissions ----------------------------------------------------

@strategy("xs_path")
def _path_inputs() -> Any:
    st = _st()
    comp = st.text("abcAZ09-_@.", min_size=1, max_size=6)
    structured = st.lists(comp, max_size=5).map(lambda c: "/" + "/".join(c))
    return st.tuples(
        st.one_of(structured, structured.map(lambda s: s.lstrip("/")),
                  noisy(structured, "/\0 \n\u00e9@"), any_text(30), st.binary(max_size=30),
                  st.sampled_from(["@introduceDomain", "@releaseDomain", "@x", "@", "/",
                                   "//", "/a/", "", b"@\xff", "/" + "a" * 3071,
                                   "/" + "a" * 3072, "a" * 2048, "a" * 2049]),
                  long_text(st.sampled_from(["/", "", "a"]), "a/"),
                  st.sampled_from([("@", "bytearray", b"/a/b"), ("@", "memoryview", b"/a")]),
                  wrong_types()),
        st.booleans())


@target("xs_path")
def _run_path(x: Any) -> None:
    from pyxen import xenstore as X
    p, special = materialize(x)
    try:
        b = X.check_path(p, special=special)
        b2 = X._p2b(p) if not special else b
    except X.XenStorePathError as e:
        typed(e, X.XenStorePathError)
        return
    raw = p.encode() if isinstance(p, str) else bytes(p)
    assert b == raw == b2
    if b in (b"@introduceDomain", b"@releaseDomain"):
        assert special
        return
    assert re.fullmatch(rb"[A-Za-z0-9_@/-]+", b) and b"//" not in b
    assert len(b) <= (3072 if b.startswith(b"/") else 2048)
    assert b == b"/" or not b.endswith(b"/")


@strategy("xs_perms")
def _perm_inputs() -> Any:
    st = _st()
    ent = st.tuples(st.sampled_from("nrwbxR"), st.one_of(
        st.integers(0, 70000).map(str), st.sampled_from(["", "00", "010", "0x1", "\u0661",
                                                         "-1", "+1"]))).map("".join)
    words = st.lists(ent, max_size=4)
    return st.one_of(words.map(" ".join), words, noisy(words.map(" ".join), "\t\n\0 "),
                     any_text(20), wrong_types(), words.map(lambda w: ("@", "gen", tuple(w))),
                     st.lists(st.sampled_from([1, None, b"r0"]), min_size=1, max_size=2))


@target("xs_perms")
def _run_perms(x: Any) -> None:
    from pyxen import xenstore as X
    t = materialize(x)
    try:
        p = X.Permissions.parse(t)
        ents = X._perm_entries(p)
    except X.XenStorePermsError as e:
        typed(e, X.XenStorePermsError)
        return
    assert X.Permissions.parse(str(p)) == p
    for ent in ents:
        assert 0 <= ent.domid <= 65535 and isinstance(ent.perm, X.Perm)
    words = x.split() if isinstance(x, str) else list(x[2] if isinstance(x, tuple) else x)
    assert [int(w[1:]) for w in words] == [e.domid for e in ents]
    assert ["nrwb".index(w[0]) for w in words] == [int(e.perm) for e in ents]


@strategy("uuid")
def _uuid_inputs() -> Any:
    st = _st()
    hexes = st.text("0123456789abcdefABCDEF-{}", max_size=40)
    return st.one_of(hexes, st.uuids().map(str), st.binary(min_size=15, max_size=17),
                     any_text(40), wrong_types(), st.just("\u0661" * 32))


@target("uuid")
def _run_uuid(x: Any) -> None:
    from pyxen.ctrl import XenInvalidArgumentError, _parse_uuid
    v = materialize(x)
    if v is None:
        return  # None means "make one up"
    try:
        b = _parse_uuid(v)
    except XenInvalidArgumentError as e:
        typed(e, XenInvalidArgumentError)
        return
    assert isinstance(b, bytes) and len(b) == 16
    if isinstance(v, str):
        assert v.isascii() and b.hex() == re.sub(r"[^0-9a-f]", "", v.lower()
                                                 .replace("urn:uuid:", ""))


# ---- self-tests of the harness (not run by default: their names start with "_") --------

@strategy("_unguarded_disk")
def _unguarded_inputs() -> Any:
    st = _st()
    return st.sampled_from(["phy:/x,xvda,w", "=\n"])


@target("_unguarded_disk")
def _run_unguarded(x: Any) -> None:
    """xlu_disk_parse without pyxen's guards: "=\n" makes flex exit(2)."""
    from pyxen.config import _Xlu
    with _Xlu("<raw>") as xlu:
        ffi, lib = xlu.ffi, xlu.lib
        disk = ffi.new("libxl_device_disk *")
        lib.libxl_device_disk_init(disk)
        s = ffi.new("char[]", x.encode())
        lib.xlu_disk_parse(xlu.cfg, 1, ffi.new("const char *[1]", [s]), disk)
        lib.libxl_device_disk_dispose(disk)


@strategy("_hang")
def _hang_inputs() -> Any:
    return _st().integers(0, 10)


@target("_hang")
def _run_hang(x: Any) -> None:
    if x >= 3:
        time.sleep(3600)


@strategy("_wrong")
def _wrong_inputs() -> Any:
    return _st().integers(0, 1000)


@target("_wrong")
def _run_wrong(x: Any) -> None:
    assert x < 500, "a wrong result"


def default_targets() -> list[str]:
    return [n for n in TARGETS if not n.startswith("_")]


# =======================================================================================
# the child: runs one target's examples, recording each input first
# =======================================================================================

def corpus_cases(name: str | None = None) -> list[Any]:
    """The regression cases of fuzz_corpus.py (of one target, or all)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import fuzz_corpus
    return [c for c in fuzz_corpus.CORPUS if name is None or c.target == name]


class Recorder:
    """The input being run, in a file mapping that survives the process (a crash in C
    leaves the last record readable by the parent)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR)
        self.map = mmap.mmap(self.fd, RECORD_SIZE)
        self.count = 0

    def write(self, x: Any) -> None:
        self.count += 1
        data = pickle.dumps(x, protocol=4)
        if len(data) > RECORD_SIZE - _HDR.size:
            data = pickle.dumps(("@", "too-big", short(x, 1000)), protocol=4)
        self.map[0:_HDR.size] = _HDR.pack(self.count, 0)
        self.map[_HDR.size:_HDR.size + len(data)] = data
        self.map[0:_HDR.size] = _HDR.pack(self.count, len(data))


def read_record(path: str) -> tuple[int, Any]:
    """(examples started, last input or None) of a child's record file."""
    with open(path, "rb") as f:
        head = f.read(_HDR.size)
        if len(head) < _HDR.size:
            return 0, None
        count, n = _HDR.unpack(head)
        if not n:
            return count, None
        return count, pickle.loads(f.read(n))


def child_main(name: str, examples: int, seed: int, record: str, corpus: bool) -> int:
    """Exit 0: all passed; 3: a check failed (hypothesis has printed and re-run the
    shrunk input last); anything else (a signal, exit(2) from flex): the process died."""
    t = TARGETS[name]
    rec = Recorder(record)
    if corpus:
        failed = 0
        for case in corpus_cases(name):
            rec.write(case.value)
            try:
                t.run(case.value)
            except BaseException:  # noqa: BLE001 - any failure of a case is reported
                failed += 1
                print(f"corpus case failed: {short(case.value)} ({case.note})",
                      file=sys.stderr)
                traceback.print_exc()
        os._exit(3 if failed else 0)

    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=False,
              phases=[Phase.generate, Phase.shrink])
    @hseed(seed)
    @given(t.strategy())
    def prop(x: Any) -> None:
        rec.write(x)
        t.run(x)

    try:
        prop()
    except BaseException:  # noqa: BLE001 - reported by exit status 3
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(3)
    print(f"examples={rec.count}", flush=True)
    os._exit(0)


# =======================================================================================
# the parent: runs children, watches them, reports
# =======================================================================================

@dataclass
class Result:
    target: str
    ok: bool
    examples: int
    seconds: float
    kind: str = ""                # "", "check failed", "killed by SIGSEGV", "exit 2", "hang"
    input: Any = None
    output: str = ""

    def report(self) -> str:
        if self.ok:
            return f"{self.target}: {self.examples} examples in {self.seconds:.1f}s: ok"
        tail = "\n".join(short(ln, 300)[1:-1] if len(ln) > 300 else ln
                         for ln in self.output.splitlines()[-40:])
        r = repr(self.input)
        how = (f"python -m tests.host.fuzz --replay {self.target} {r!r}" if len(r) < 400
               else "(too long to show here: --save puts it in the corpus)")
        return (f"{self.target}: FAILED ({self.kind}) after {self.examples} examples in "
                f"{self.seconds:.1f}s\n  input: {short(self.input, 2000)}\n"
                f"  reproduce: {how}\n--- child output ---\n{tail}")


def _describe(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return "check failed" if rc == 3 else f"exit {rc}"


class Child:
    def __init__(self, name: str, examples: int, seed: int, *, corpus: bool = False,
                 hang: float = DEFAULT_HANG) -> None:
        self.name, self.hang, self.started = name, hang, time.monotonic()
        fd, self.record = tempfile.mkstemp(prefix=f"pyxen-fuzz-{name}-")
        os.ftruncate(fd, RECORD_SIZE)
        os.close(fd)
        self.out = tempfile.TemporaryFile()  # noqa: SIM115 - closed in _result
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name,
               "--examples", str(examples), "--seed", str(seed), "--record", self.record]
        if corpus:
            cmd.append("--corpus")
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=str(ROOT), env=env)
        self.last_count, self.last_change = 0, time.monotonic()
        self.hung = False

    def poll(self) -> Result | None:
        rc = self.proc.poll()
        if rc is None:
            count, _ = self._peek()
            now = time.monotonic()
            if count != self.last_count:
                self.last_count, self.last_change = count, now
                return None
            if now - self.last_change <= self.hang:
                return None
            self.hung = True
            self.proc.kill()
            rc = self.proc.wait()
        return self._result(rc)

    def _peek(self) -> tuple[int, Any]:
        try:
            with open(self.record, "rb") as f:
                return _HDR.unpack(f.read(_HDR.size))[0], None
        except (OSError, struct.error):
            return 0, None

    def _result(self, rc: int) -> Result:
        count, last = read_record(self.record)
        os.unlink(self.record)
        self.out.seek(0)
        output = self.out.read().decode("utf-8", "replace")
        self.out.close()
        secs = time.monotonic() - self.started
        if rc == 0 and not self.hung:
            return Result(self.name, True, count, secs, output=output)
        kind = f"hang: no new example for {self.hang:.0f}s" if self.hung else _describe(rc)
        return Result(self.name, False, count, secs, kind, last, output)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()
        if os.path.exists(self.record):
            os.unlink(self.record)


def examples_for(name: str, per_target: int) -> int:
    return max(10, int(per_target / TARGETS[name].weight))


def run(names: Iterable[str], examples: int, seed: int, *, jobs: int = 2,
        corpus: bool = False, hang: float = DEFAULT_HANG,
        on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """Run each target in its own child, ``jobs`` at a time."""
    todo = list(names)
    running: list[Child] = []
    results: list[Result] = []
    try:
        while todo or running:
            while todo and len(running) < jobs:
                n = todo.pop(0)
                running.append(Child(n, examples_for(n, examples), seed, corpus=corpus,
                                     hang=hang))
            time.sleep(0.05)
            for c in list(running):
                r = c.poll()
                if r is not None:
                    running.remove(c)
                    results.append(r)
                    if on_result:
                        on_result(r)
    finally:
        for c in running:
            c.kill()
    return results


def save(result: Result, seed: int) -> None:
    """Append a failing input to the regression corpus."""
    note = f"found by fuzzing (seed {seed}): {result.kind}"
    line = f"CORPUS.append(Case({result.target!r}, {result.input!r}, {note!r}))\n"
    ast.parse(line)
    with open(CORPUS_FILE, "a") as f:
        f.write(line)


def replay(name: str, value: Any) -> int:
    """Run one input in this process (a crash kills it: that is the point)."""
    TARGETS[name].run(value)
    print("ok")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.host.fuzz", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default="",
                    help="comma-separated targets (default: all): " + ", ".join(TARGETS))
    ap.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES,
                    help="examples per target and round (default %(default)s)")
    ap.add_argument("--seed", type=int, default=None, help="first seed (default: random)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--seconds", type=float, default=0,
                    help="keep running rounds with new seeds for this long")
    ap.add_argument("--hang", type=float, default=DEFAULT_HANG,
                    help="seconds without progress that count as a hang")
    ap.add_argument("--save", action="store_true",
                    help="append failing inputs to " + CORPUS_FILE.name)
    ap.add_argument("--corpus", action="store_true", help="replay the corpus only")
    ap.add_argument("--replay", nargs=2, metavar=("TARGET", "INPUT"),
                    help="run one input (a Python literal) in this process")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--record", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        sys.path.insert(0, str(HERE))
        return child_main(a.child, a.examples, a.seed or 0, a.record, a.corpus)
    if a.replay:
        return replay(a.replay[0], ast.literal_eval(a.replay[1]))
    names = [n for n in a.targets.split(",") if n] or default_targets()
    unknown = set(names) - set(TARGETS)
    if unknown:
        ap.error(f"unknown targets: {', '.join(sorted(unknown))}")
    # SIGTERM unwinds like Ctrl-C, so run() kills its children on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seed = a.seed if a.seed is not None else int.from_bytes(os.urandom(4), "little")
    deadline = time.monotonic() + a.seconds
    failed = 0
    total = 0
    start = time.monotonic()
    while True:
        print(f"corpus of {len(names)} targets" if a.corpus else
              f"seed {seed}: {len(names)} targets, {a.examples} examples each", flush=True)

        def show(r: Result) -> None:
            print(r.report(), flush=True)
        for r in run(names, a.examples, seed, jobs=a.jobs, corpus=a.corpus, hang=a.hang,
                     on_result=show):
            total += r.examples
            if not r.ok:
                failed += 1
                if a.save and r.input is not None and not a.corpus:
                    save(r, seed)
                    print(f"  saved to {CORPUS_FILE}", flush=True)
        if a.corpus or time.monotonic() >= deadline:
            break
        seed += 1
    print(f"{total} examples in {time.monotonic() - start:.0f}s, {failed} failures")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
