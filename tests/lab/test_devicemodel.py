"""pyxen.devicemodel against the real hypervisor: a Python ioreq server answering an HVM
guest's port I/O and PCI config space, and bad input.

The guest is an HVM domain built by pyxen.guest with a stand-in device model (a script that
only says "running" in xenstore: no qemu), so the only ioreq server is ours. It claims the
PCI config address port 0xcf8 (port I/O) and the config space of PCI device 00:03.0.
hvmloader's PCI scan writes 0xcf8 for every device and reads each one's class, vendor and
device id; our handler answers for 00:03.0 as an Intel IDE controller (class 0x0101, vendor
0x8086), and hvmloader, having read those answers, enables the controller's legacy decode by
writing 0x8000 to its registers 0x40 and 0x42: the guest's writes prove it got our answers.
"""

import os
import threading

import pytest

import pyxen.ctrl as ctrl
import pyxen.guest as G
from pyxen import devicemodel as dmod
from pyxen.errors import (ArgumentError, DomainNotFoundError, HandleClosedError, PyxenError,
                          XenFeatureUnavailable)

DEV = 3                       # our PCI device: 00:03.0
SBDF = DEV << 3               # segment 0, bus 0, device 3, function 0
TIMEOUT = 600                 # hvmloader under TCG reaches its PCI scan within seconds;
                              # the CPU is shared with other labs


@pytest.fixture(scope="module")
def hvm(tmp_path_factory):
    d = tmp_path_factory.mktemp("dm")
    fake = d / "fake-dm"
    fake.write_text("#!/bin/sh\nxenstore-write /local/domain/0/device-model/$XEN_DOMAIN_ID/"
                    "state running\nexec sleep 3600\n")
    os.chmod(fake, 0o755)
    spec = G.BuildSpec(name=f"pyxen-t-dm-{os.getpid()}", type="hvm", memory=64, vcpus=1,
                       paused=True, serial="none", device_model=str(fake))
    g = G.build(spec)
    try:
        yield g.domid
    finally:
        G.destroy(g.domid)
        with ctrl.open() as xc:
            G.wait_gone(xc, g.domid, 30)


@pytest.fixture
def dm():
    with dmod.open() as h:
        yield h


class Ide:
    """PCI config space of an Intel PIIX3 IDE controller (no BARs), and what came in."""

    def __init__(self):
        self.space = bytearray(256)
        self.space[0:4] = (0x8086).to_bytes(2, "little") + (0x7010).to_bytes(2, "little")
        self.space[0x0A:0x0C] = (0x0101).to_bytes(2, "little")  # class: IDE
        self.log = []
        self.done = threading.Event()

    def __call__(self, req):
        self.log.append(req)
        if req.type == dmod.IoreqType.PIO:
            return None if req.read else 0   # 0xcf8: Xen keeps the address itself
        assert req.type == dmod.IoreqType.PCI_CONFIG and req.sbdf == SBDF, req
        reg, n = req.register, req.size
        if reg + n > len(self.space):
            return None
        if req.read:
            return int.from_bytes(self.space[reg:reg + n], "little")
        if not (0x10 <= reg < 0x28 or 0x30 <= reg < 0x34):     # BARs and ROM stay 0
            self.space[reg:reg + n] = (req.data & ((1 << 8 * n) - 1)).to_bytes(n, "little")
        if reg == 0x42:
            self.done.set()
        return None


def test_python_ioreq_server_answers_hvmloader(hvm, dm):
    ide = Ide()
    with dmod.IoreqServer(hvm, dm=dm) as srv:
        assert srv.vcpus == 1
        srv.map_io_range(0xCF8, 0xCFB)
        srv.map_pcidev(0, 0, DEV, 0)
        srv.enable()
        with ctrl.open() as xc:
            xc.unpause(hvm)
        srv.serve(ide, until=ide.done.is_set, timeout=TIMEOUT)
        # the guest has been answered: pause it before the server goes
        with ctrl.open() as xc:
            xc.pause(hvm)
    assert srv.closed
    assert ide.done.is_set(), f"{len(ide.log)} requests, last {ide.log[-5:]}"
    pio = [r for r in ide.log if r.type == dmod.IoreqType.PIO]
    cfg = [r for r in ide.log if r.type == dmod.IoreqType.PCI_CONFIG]
    # 0xcf8 writes: 4 bytes, the enable bit, our device's address among them
    assert pio and all(r.addr == 0xCF8 and r.size == 4 and not r.read for r in pio), pio[:3]
    assert all(r.data & 0x80000000 for r in pio)
    assert any((r.data >> 8) & 0xFFFF == SBDF for r in pio)
    assert all(r.vcpu == 0 and r.count == 1 and not r.data_is_ptr for r in ide.log)
    # hvmloader read our class, vendor and device id, then wrote the IDE legacy enables
    reads = {(r.register, r.size) for r in cfg if r.read}
    assert {(0x0A, 2), (0x00, 2), (0x02, 2)} <= reads, sorted(reads)
    writes = [(r.register, r.size, r.data & 0xFFFF) for r in cfg if not r.read]
    assert (0x40, 2, 0x8000) in writes and (0x42, 2, 0x8000) in writes, writes
    assert writes.index((0x40, 2, 0x8000)) < writes.index((0x42, 2, 0x8000))


def test_interrupt_lines_and_server_calls(hvm, dm):
    sid = dm.create_ioreq_server(hvm)
    try:
        assert dm.ioreq_server_info(hvm, sid).bufioreq_port is None  # created without
        dm.map_io_range(hvm, sid, 0x5000, 0x50FF)
        dm.map_io_range(hvm, sid, 0xFE000000, 0xFE000FFF, mmio=True)
        dm.unmap_io_range(hvm, sid, 0x5000, 0x50FF)
        dm.map_pcidev(hvm, sid, 0, 0, 4, 0)
        dm.unmap_pcidev(hvm, sid, 0, 0, 4, 0)
        dm.set_ioreq_server_state(hvm, sid, True)
        dm.set_ioreq_server_state(hvm, sid, False)
    finally:
        dm.destroy_ioreq_server(hvm, sid)
    with pytest.raises(dmod.IoreqServerNotFound):
        dm.destroy_ioreq_server(hvm, sid)
    dm.set_isa_irq_level(hvm, 5, 1)
    dm.set_isa_irq_level(hvm, 5, 0)
    dm.set_pci_intx_level(hvm, 0, 0, 3, 0, 1)
    dm.set_pci_intx_level(hvm, 0, 0, 3, 0, 0)
    try:
        dm.set_irq_level(hvm, 20, 1)       # XEN_DMOP_set_irq_level: Arm only
        dm.set_irq_level(hvm, 20, 0)
    except XenFeatureUnavailable as e:
        assert e.__class__ is XenFeatureUnavailable and "set_irq_level" in str(e)
    dm.set_pci_link_route(hvm, 0, 5)
    assert dm.nr_vcpus(hvm) == 1
    dm.modified_memory(hvm, 0x100, 1)
    # VRAM tracking of 16 frames (none written while the guest is paused)
    dirty = dm.track_dirty_vram(hvm, 0x2000, 16)
    assert all(0x2000 <= p < 0x2010 for p in dirty)
    dm.track_dirty_vram(hvm, 0, 0)


def test_bad_server_id_is_typed(hvm, dm):
    with pytest.raises(dmod.IoreqServerNotFound) as ei:
        dm.set_ioreq_server_state(hvm, 999, True)
    assert ei.value.server == 999 and ei.value.domid == hvm
    assert isinstance(ei.value, LookupError) and isinstance(ei.value, PyxenError)
    with pytest.raises(dmod.IoreqServerNotFound):
        dm.map_io_range(hvm, 999, 0x100, 0x1FF)
    with pytest.raises(dmod.IoreqServerNotFound):
        dm.ioreq_server_info(hvm, 999)


def test_bad_domid_is_typed(dm):
    with pytest.raises(DomainNotFoundError) as ei:
        dm.create_ioreq_server(31000)
    assert isinstance(ei.value, dmod.DeviceModelDomainError) and ei.value.domid == 31000
    with pytest.raises(DomainNotFoundError):
        dm.set_isa_irq_level(31000, 1, 1)
    with pytest.raises(DomainNotFoundError):
        dmod.IoreqServer(31000, dm=dm, vcpus=1)
    # dom0 is not an HVM domain: refused, typed
    with pytest.raises(dmod.DeviceModelError):
        dm.create_ioreq_server(0)


def test_out_of_range_arguments_never_reach_c(dm):
    for call in (lambda: dm.create_ioreq_server(1 << 16), lambda: dm.set_isa_irq_level(1, 256, 1),
                 lambda: dm.map_io_range(1, 0, 5, 4), lambda: dm.map_pcidev(1, 0, 0, 0, 32, 0),
                 lambda: dm.set_irq_level(1, 1, 2), lambda: dm.create_ioreq_server(-1)):
        with pytest.raises(ArgumentError):
            call()
    with pytest.raises(TypeError):
        dm.create_ioreq_server("1")


def test_closed_handle(hvm):
    h = dmod.open()
    h.close()
    h.close()
    with pytest.raises(HandleClosedError):
        h.nr_vcpus(hvm)
