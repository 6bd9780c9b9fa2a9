"""pyxen.stat's xentop table (pure): the columns and formats of xentop's batch mode."""

from pyxen.stat import DomainStat, NetStat, NodeStat, VbdStat, VcpuStat, xentop_lines

XENTOP_HEADER = ("      NAME  STATE   CPU(sec) CPU(%)     MEM(k) MEM(%)  MAXMEM(k) MAXMEM(%) "
                 "VCPUS NETS NETTX(k) NETRX(k) VBDS   VBD_OO   VBD_RD   VBD_WR  VBD_RSECT  "
                 "VBD_WSECT SSID")


def _dom(**kw):
    base = dict(domid=0, name="Domain-0", cpu_ns=21_700_000_000, cur_mem=1 << 30,
                max_mem=None, ssid=0, dying=False, crashed=False, shutdown=False,
                paused=False, blocked=False, running=True, num_vcpus=2,
                vcpus=(VcpuStat(0, True, 12_000_000_000), VcpuStat(1, True, 9_000_000_000)))
    base.update(kw)
    return DomainStat(**base)


def _node(*doms, taken=10.0):
    return NodeStat(xen_version="4.17.5", tot_mem=4 << 30, free_mem=2 << 30, freeable_mb=0,
                    num_cpus=2, cpu_hz=2_000_000_000, domains=doms, taken=taken)


def test_rows_as_xentop_prints_them():
    guest = _dom(domid=3, name="a-very-long-guest-name", cpu_ns=5_000_000_000,
                 cur_mem=128 << 20, max_mem=129 << 20, running=False, paused=True,
                 networks=(NetStat(0, 2048, 2, 0, 0, 5120, 5, 0, 0),),
                 vbds=(VbdStat(1, 51712, 0, 10, 3, 80, 24, False),))
    lines = xentop_lines(_node(_dom(), guest))
    assert lines[0] == XENTOP_HEADER
    # sorted by name, case-insensitively (xentop's default sort field is the name)
    assert lines[1] == ("a-very-lon ----p-          5    0.0     131072    3.1     132096"
                        "       3.1     2    1        5        2    1        0       10"
                        "        3         80         24    0")
    assert lines[2] == ("  Domain-0 -----r         21    0.0    1048576   25.0   no limit"
                        "       n/a     2    0        0        0    0        0        0"
                        "        0          0          0    0")


def test_cpu_percent_between_samples_and_details():
    a = _node(_dom(cpu_ns=10_000_000_000), taken=100.0)
    b = _node(_dom(cpu_ns=10_500_000_000, vbds=(VbdStat(1, 768, 0, 0, 0, 0, 0, True),)),
              taken=101.0)
    assert b.cpu_percent(a, 0) == 50.0 and b.cpu_percent(a, 7) == 0.0
    lines = xentop_lines(b, a, vcpus=True, vbds=True, full_name=True)
    assert lines[1].split()[3] == "50.0"
    # a vbd whose statistics are unreadable ("no limit" is two words: fields 14 to 18)
    assert lines[1].split()[14:19] == ["-"] * 5
    assert lines[2] == "VCPUs(sec):   0:         12s  1:          9s"
    assert lines[3] == ("VBD BlkBack  768 [ 3: 0]  OO:        -   RD:        -   WR:        -"
                        "   RSECT:          -   WSECT:          -")


def test_widths_grow_with_large_counters():
    big = _dom(networks=(NetStat(0, 0, 0, 0, 0, 10 ** 12, 1, 0, 0),))
    lines = xentop_lines(_node(big))
    assert "NETS  NETTX(k)" in lines[0] and len(lines[0]) == len(XENTOP_HEADER) + 1
    assert lines[1].split()[11] == str(10 ** 12 // 1024)
