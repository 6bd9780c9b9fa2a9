"""What xentop shows (libxenstat), typed: per node and per domain.

    with pyxen.stat.open() as st:
        a = st.sample()                 # NodeStat: one xenstat_get_node, copied out
        time.sleep(1)
        b = st.sample()
        for d in b.domains:             # DomainStat: cpu_ns, memory, vCPUs, vbds, vifs
            print(d.name, d.state, d.cpu_seconds, b.cpu_percent(a, d.domid))

Memory is in bytes as libxenstat reports it (xentop prints KiB); ``max_mem`` is None for
a domain with no limit. A sample is a frozen copy: nothing in it points into C memory.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ._handle import Handle
from ._native import require_dom0, xen
from .errors import XenStatError, check_xenstat  # noqa: F401

_check = check_xenstat

__all__ = ["XenStat", "NodeStat", "DomainStat", "VcpuStat", "NetStat", "VbdStat",
           "XenStatError", "open"]

NO_LIMIT = (1 << 64) - 1     # xenstat_domain_max_mem for a domain without a limit


@dataclass(frozen=True)
class VcpuStat:
    """One vCPU: online, and its CPU time in ns."""

    vcpu: int
    online: bool
    ns: int


@dataclass(frozen=True)
class NetStat:
    """One vif, as dom0's backend interface counts it (rx is what the guest received)."""

    id: int
    rx_bytes: int
    rx_packets: int
    rx_errs: int
    rx_drop: int
    tx_bytes: int
    tx_packets: int
    tx_errs: int
    tx_drop: int


@dataclass(frozen=True)
class VbdStat:
    """One vbd: its backend type (1 blkback, 2 blktap), device number and request counts;
    ``error`` when libxenstat could not read its statistics."""

    type: int
    dev: int
    oo_reqs: int
    rd_reqs: int
    wr_reqs: int
    rd_sects: int
    wr_sects: int
    error: bool

    @property
    def type_name(self) -> str:
        """xentop's name of the backend type."""
        return ("Unidentified", "BlkBack", "BlkTap")[self.type] if self.type < 3 else "?"


@dataclass(frozen=True)
class DomainStat:
    """One domain in a sample."""

    domid: int
    name: str
    cpu_ns: int
    cur_mem: int
    max_mem: int | None
    ssid: int
    dying: bool
    crashed: bool
    shutdown: bool
    paused: bool
    blocked: bool
    running: bool
    vcpus: tuple[VcpuStat, ...] = ()
    num_vcpus: int = 0
    networks: tuple[NetStat, ...] = ()
    vbds: tuple[VbdStat, ...] = ()

    @property
    def state(self) -> str:
        """xentop's STATE letters, in its order: d s b c p r."""
        return "".join(c if on else "-" for c, on in (
            ("d", self.dying), ("s", self.shutdown), ("b", self.blocked),
            ("c", self.crashed), ("p", self.paused), ("r", self.running)))

    @property
    def cpu_seconds(self) -> int:
        """CPU time in whole seconds (xentop's CPU(sec))."""
        return self.cpu_ns // 1_000_000_000

    @property
    def net_tx_bytes(self) -> int:
        """Bytes sent by the domain over all its vifs."""
        return sum(n.tx_bytes for n in self.networks)

    @property
    def net_rx_bytes(self) -> int:
        """Bytes received by the domain over all its vifs."""
        return sum(n.rx_bytes for n in self.networks)

    def vbd_total(self, what: str) -> int | None:
        """The sum of one counter (``oo_reqs``, ``rd_reqs``, ``wr_reqs``, ``rd_sects``,
        ``wr_sects``) over the vbds whose statistics could be read; None (xentop's ``-``)
        when the domain has vbds and none could be."""
        ok = [v for v in self.vbds if not v.error]
        if self.vbds and not ok:
            return None
        return sum(getattr(v, what) for v in ok)


@dataclass(frozen=True)
class NodeStat:
    """One sample (``xenstat_get_node``): the host and its domains, domid order."""

    xen_version: str | None
    tot_mem: int
    free_mem: int
    freeable_mb: int
    num_cpus: int
    cpu_hz: int
    domains: tuple[DomainStat, ...]
    taken: float = field(default=0.0, compare=False)   # time.monotonic() of the sample

    def domain(self, domid: int) -> DomainStat | None:
        """The domain with that id in this sample, or None."""
        return next((d for d in self.domains if d.domid == domid), None)

    def cpu_percent(self, prev: "NodeStat", domid: int) -> float:
        """A domain's CPU use between ``prev`` and this sample, in percent of one CPU
        (xentop's CPU(%)); 0.0 if it is in only one of them."""
        a, b = prev.domain(domid), self.domain(domid)
        elapsed = self.taken - prev.taken
        if a is None or b is None or elapsed <= 0:
            return 0.0
        return (b.cpu_ns - a.cpu_ns) / 1e9 / elapsed * 100.0


class XenStat(Handle):
    """A libxenstat handle (``xenstat_init``: it opens libxenctrl and xenstore itself).
    Safe to share between threads: samples are taken one at a time."""

    def __init__(self) -> None:
        require_dom0("libxenstat")
        ffi, lib = xen()
        self._lib = lib
        h = lib.xenstat_init()
        _check(h != ffi.NULL, "xenstat_init")
        self._adopt(ffi, h, lib.xenstat_uninit)
        self._lock = threading.Lock()

    def sample(self, flags: int | None = None) -> NodeStat:
        """``xenstat_get_node``: everything ``flags`` asks for (XENSTAT_ALL by default:
        vCPUs, networks, vbds and the Xen version), copied out and freed."""
        ffi, lib = self._ffi, self._lib
        flags = lib.XENSTAT_ALL if flags is None else flags
        with self._lock:
            node = lib.xenstat_get_node(self._p(), flags)
            taken = time.monotonic()
            _check(node != ffi.NULL, "xenstat_get_node")
            try:
                return self._node(node, flags, taken)
            finally:
                lib.xenstat_free_node(node)

    def _node(self, node: Any, flags: int, taken: float) -> NodeStat:
        ffi, lib = self._ffi, self._lib
        ver = lib.xenstat_node_xen_version(node) if flags & lib.XENSTAT_XEN_VERSION \
            else ffi.NULL
        doms = []
        for i in range(lib.xenstat_node_num_domains(node)):
            d = lib.xenstat_node_domain_by_index(node, i)
            if d != ffi.NULL:
                doms.append(self._domain(d, flags))
        return NodeStat(
            xen_version=ffi.string(ver).decode("ascii", "replace") if ver != ffi.NULL
            else None,
            tot_mem=int(lib.xenstat_node_tot_mem(node)),
            free_mem=int(lib.xenstat_node_free_mem(node)),
            freeable_mb=int(lib.xenstat_node_freeable_mb(node)),
            num_cpus=int(lib.xenstat_node_num_cpus(node)),
            cpu_hz=int(lib.xenstat_node_cpu_hz(node)),
            domains=tuple(doms), taken=taken)

    def _domain(self, d: Any, flags: int) -> DomainStat:
        ffi, lib = self._ffi, self._lib
        name = lib.xenstat_domain_name(d)
        nvcpu = int(lib.xenstat_domain_num_vcpus(d))
        vcpus: list[VcpuStat] = []
        if flags & lib.XENSTAT_VCPU:
            for i in range(nvcpu):
                v = lib.xenstat_domain_vcpu(d, i)
                if v != ffi.NULL:
                    vcpus.append(VcpuStat(i, bool(lib.xenstat_vcpu_online(v)),
                                          int(lib.xenstat_vcpu_ns(v))))
        nets: list[NetStat] = []
        if flags & lib.XENSTAT_NETWORK:
            for i in range(lib.xenstat_domain_num_networks(d)):
                n = lib.xenstat_domain_network(d, i)
                if n != ffi.NULL:
                    nets.append(NetStat(
                        int(lib.xenstat_network_id(n)),
                        int(lib.xenstat_network_rbytes(n)), int(lib.xenstat_network_rpackets(n)),
                        int(lib.xenstat_network_rerrs(n)), int(lib.xenstat_network_rdrop(n)),
                        int(lib.xenstat_network_tbytes(n)), int(lib.xenstat_network_tpackets(n)),
                        int(lib.xenstat_network_terrs(n)), int(lib.xenstat_network_tdrop(n))))
        vbds: list[VbdStat] = []
        if flags & lib.XENSTAT_VBD:
            for i in range(lib.xenstat_domain_num_vbds(d)):
                b = lib.xenstat_domain_vbd(d, i)
                if b != ffi.NULL:
                    vbds.append(VbdStat(
                        int(lib.xenstat_vbd_type(b)), int(lib.xenstat_vbd_dev(b)),
                        int(lib.xenstat_vbd_oo_reqs(b)), int(lib.xenstat_vbd_rd_reqs(b)),
                        int(lib.xenstat_vbd_wr_reqs(b)), int(lib.xenstat_vbd_rd_sects(b)),
                        int(lib.xenstat_vbd_wr_sects(b)), bool(lib.xenstat_vbd_error(b))))
        max_mem = int(lib.xenstat_domain_max_mem(d))
        return DomainStat(
            domid=int(lib.xenstat_domain_id(d)),
            name=ffi.string(name).decode("utf-8", "replace") if name != ffi.NULL else "",
            cpu_ns=int(lib.xenstat_domain_cpu_ns(d)),
            cur_mem=int(lib.xenstat_domain_cur_mem(d)),
            max_mem=None if max_mem == NO_LIMIT else max_mem,
            ssid=int(lib.xenstat_domain_ssid(d)),
            dying=bool(lib.xenstat_domain_dying(d)),
            crashed=bool(lib.xenstat_domain_crashed(d)),
            shutdown=bool(lib.xenstat_domain_shutdown(d)),
            paused=bool(lib.xenstat_domain_paused(d)),
            blocked=bool(lib.xenstat_domain_blocked(d)),
            running=bool(lib.xenstat_domain_running(d)),
            vcpus=tuple(vcpus), num_vcpus=nvcpu, networks=tuple(nets), vbds=tuple(vbds))


def open() -> XenStat:  # noqa: A001 - mirrors xenstat_init
    """``xenstat_init``: a XenStat handle."""
    return XenStat()


# -- xentop's batch table ----------------------------------------------------------------

HEADERS = (("NAME", 10), ("STATE", 6), ("CPU(sec)", 10), ("CPU(%)", 6), ("MEM(k)", 10),
           ("MEM(%)", 6), ("MAXMEM(k)", 10), ("MAXMEM(%)", 9), ("VCPUS", 5), ("NETS", 4),
           ("NETTX(k)", 8), ("NETRX(k)", 8), ("VBDS", 4), ("VBD_OO", 8), ("VBD_RD", 8),
           ("VBD_WR", 8), ("VBD_RSECT", 10), ("VBD_WSECT", 10), ("SSID", 4))


def xentop_lines(cur: NodeStat, prev: NodeStat | None = None, *, full_name: bool = False,
                 dom0_first: bool = False, vcpus: bool = False, networks: bool = False,
                 vbds: bool = False, repeat_header: bool = False) -> list[str]:
    """One iteration of ``xentop -b``, line for line: the header, then a row per domain
    sorted by name as xentop sorts them, with the -v/-n/-x detail lines."""
    doms = sorted(cur.domains, key=lambda d: d.name.lower())
    if dom0_first:
        dom0 = [d for d in doms if d.name == "Domain-0"]
        doms = dom0 + [d for d in doms if d.name != "Domain-0"]
    widths = dict(HEADERS)
    if full_name:
        widths["NAME"] = max([10] + [len(d.name) for d in doms])
    for key, get in (("NETTX(k)", lambda d: d.net_tx_bytes // 1024 + 1),
                     ("NETRX(k)", lambda d: d.net_rx_bytes // 1024 + 1),
                     ("VBD_RD", lambda d: (d.vbd_total("rd_reqs") or 0) + 1),
                     ("VBD_WR", lambda d: (d.vbd_total("wr_reqs") or 0) + 1),
                     ("VBD_RSECT", lambda d: (d.vbd_total("rd_sects") or 0) + 1),
                     ("VBD_WSECT", lambda d: (d.vbd_total("wr_sects") or 0) + 1)):
        for d in doms:
            widths[key] = max(widths[key], len(str(get(d))))
    header = " ".join(f"{h:>{widths[h]}}" for h, _ in HEADERS)
    out: list[str] = []

    def num(v: int | None, w: int) -> str:
        return f"{'-':>{w}}" if v is None else f"{v:>{w}}"

    for i, d in enumerate(doms):
        if i == 0 or repeat_header:
            out.append(header)
        name = f"{d.name:>{widths['NAME']}}" if full_name else f"{d.name[:10]:>10}"
        pct = cur.cpu_percent(prev, d.domid) if prev is not None else 0.0
        mem_pct = d.cur_mem / cur.tot_mem * 100 if cur.tot_mem else 0.0
        if d.max_mem is None:
            maxmem, max_pct = f"{'no limit':>10}", f"{'n/a':>9}"
        else:
            maxmem = f"{d.max_mem // 1024:>10}"
            max_pct = f"{d.max_mem / cur.tot_mem * 100 if cur.tot_mem else 0.0:>9.1f}"
        out.append(" ".join([
            name, d.state, f"{d.cpu_seconds:>10}", f"{pct:>6.1f}", f"{d.cur_mem // 1024:>10}",
            f"{mem_pct:>6.1f}", maxmem, max_pct, f"{d.num_vcpus:>5}",
            f"{len(d.networks):>4}", f"{d.net_tx_bytes // 1024:>{widths['NETTX(k)']}}",
            f"{d.net_rx_bytes // 1024:>{widths['NETRX(k)']}}", f"{len(d.vbds):>4}",
            num(d.vbd_total("oo_reqs"), 8), num(d.vbd_total("rd_reqs"), widths["VBD_RD"]),
            num(d.vbd_total("wr_reqs"), widths["VBD_WR"]),
            num(d.vbd_total("rd_sects"), widths["VBD_RSECT"]),
            num(d.vbd_total("wr_sects"), widths["VBD_WSECT"]), f"{d.ssid:>4}"]))
        if vcpus:
            line = "VCPUs(sec): "
            for v in d.vcpus:
                if v.online:
                    if v.vcpu != 0 and v.vcpu % 5 == 0:
                        line += "\n        "
                    line += f" {v.vcpu:>2}: {v.ns // 1_000_000_000:>10}s"
            out.extend(line.split("\n"))
        if networks:
            for j, n in enumerate(d.networks):
                out.append(f"Net{j} RX: {n.rx_bytes:>8}bytes {n.rx_packets:>8}pkts "
                           f"{n.rx_errs:>8}err {n.rx_drop:>8}drop  TX: {n.tx_bytes:>8}bytes "
                           f"{n.tx_packets:>8}pkts {n.tx_errs:>8}err {n.tx_drop:>8}drop")
        if vbds:
            for b in d.vbds:
                det = f"[{b.dev >> 8:>2x}:{b.dev & 0xFF:>2x}] "
                if b.error:
                    out.append(f"VBD {b.type_name} {b.dev:>4} {det} OO: {'-':>8}   RD: "
                               f"{'-':>8}   WR: {'-':>8}   RSECT: {'-':>10}   WSECT: "
                               f"{'-':>10}")
                else:
                    out.append(f"VBD {b.type_name} {b.dev:>4} {det} OO: {b.oo_reqs:>8}   "
                               f"RD: {b.rd_reqs:>8}   WR: {b.wr_reqs:>8}   RSECT: "
                               f"{b.rd_sects:>10}   WSECT: {b.wr_sects:>10}")
    return out
