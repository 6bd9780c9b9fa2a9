"""pyxen.stat and pyxen top against xentop -b on the real hypervisor."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from conftest import run_tool, xl_guest

from pyxen.errors import HandleClosedError

IMG = "/var/tmp/pyxen-top.img"


@pytest.fixture(scope="module")
def guest(guest_kit, tmp_path_factory):
    """A paused PV guest with one file disk, made by xl (so xentop and pyxen see the same)."""
    with open(IMG, "wb") as f:
        f.truncate(8 << 20)
    with xl_guest("pyxen-t-top", guest_kit, tmp_path_factory.mktemp("top"), paused=True,
                  vcpus=2, more=f"disk = [ 'file:{IMG},xvda,w' ]\n") as domid:
        yield domid
    os.unlink(IMG)


def _rows(text: str) -> dict[str, list[str]]:
    """name -> fields of each domain row of xentop -b output (header lines dropped)."""
    out = {}
    for line in text.splitlines():
        f = line.split()
        if f and f[0] != "NAME" and len(f) >= 19 and not line.startswith(("VBD", "VCPUs")):
            out[f[0]] = f
    return out


def _same_row(mine: list[str], theirs: list[str], *, paused: bool) -> None:
    # CPU(sec) only grows between the two samples (pyxen's is taken after xentop's), and not
    # at all for a paused domain; CPU(%) is 0.0 in a first iteration
    if paused:
        assert mine[2] == theirs[2], (mine, theirs)
    else:
        assert int(mine[2]) >= int(theirs[2]), (mine, theirs)
    assert mine[:2] + mine[3:] == theirs[:2] + theirs[3:], (mine, theirs)


def test_top_matches_xentop(guest):
    xt = run_tool("xentop", "-b", "-i", "1", "-x", "-f")   # first: CPU times only grow
    r = subprocess.run([sys.executable, "-m", "pyxen", "top", "-b", "-i", "1", "-x", "-f"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    mine, theirs = _rows(r.stdout), _rows(xt)
    assert set(mine) == set(theirs) and "pyxen-t-top" in mine
    for name in theirs:
        _same_row(mine[name], theirs[name], paused=theirs[name][1][4] == "p")
    assert r.stdout.splitlines()[0] == xt.splitlines()[0]          # the header
    vbd = [ln for ln in r.stdout.splitlines() if ln.startswith("VBD")]
    assert vbd and vbd == [ln for ln in xt.splitlines() if ln.startswith("VBD")]


def test_typed_sample(guest, xc):
    import pyxen.stat as S
    with S.open() as st:
        a = st.sample()
        b = st.sample()
    d = b.domain(guest)
    assert d is not None and d.name == "pyxen-t-top"
    assert d.paused and not d.running and d.state[4] == "p"
    info = xc.domain(guest)
    assert d.cur_mem == info.memory_kb * 1024
    assert d.num_vcpus == 2 and len(d.vcpus) == 2
    assert len(d.vbds) == 1 and d.vbds[0].dev == 51712 and d.vbds[0].type_name == "BlkBack"
    dom0 = b.domain(0)
    assert dom0 is not None and dom0.name == "Domain-0"
    assert b.num_cpus == xc.physinfo().nr_cpus and b.tot_mem > b.free_mem > 0
    assert b.xen_version and b.xen_version.startswith(
        run_tool("xl", "info", "xen_version").strip()[:4])
    assert dom0.cpu_ns >= a.domain(0).cpu_ns     # type: ignore[union-attr]
    assert 0.0 <= b.cpu_percent(a, 0) and b.cpu_percent(a, 9999) == 0.0


def test_top_json(guest):
    import json
    r = subprocess.run([sys.executable, "-m", "pyxen", "top", "--json"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    names = {d["name"]: d for d in doc["domains"]}
    assert names["pyxen-t-top"]["state"] == "----p-" and names["pyxen-t-top"]["num_vcpus"] == 2


def test_shared_by_threads_and_closed_from_one(guest):
    import pyxen.stat as S
    st = S.open()
    bad: list[BaseException] = []
    go = threading.Barrier(5)

    def sampler():
        go.wait()
        for _ in range(40):
            try:
                assert st.sample().domain(0) is not None
            except HandleClosedError:
                pass
            except BaseException as e:  # noqa: BLE001 - collected for the assert
                bad.append(e)
                return
    threads = [threading.Thread(target=sampler) for _ in range(4)]
    for t in threads:
        t.start()
    go.wait()
    st.close()
    for t in threads:
        t.join()
    assert not bad, bad[:3]
    with pytest.raises(HandleClosedError):
        st.sample()
