"""pyxen.hypfs against the real hypervisor file system and Xen's own xenhypfs tool."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from conftest import run_tool

from pyxen.errors import HandleClosedError


@pytest.fixture
def fs():
    import pyxen.hypfs
    with pyxen.hypfs.open() as h:
        yield h


def _pyxen(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyxen", "hypfs", *argv],
                          capture_output=True, text=True, timeout=120)


def test_ls_and_tree_match_xenhypfs(fs):
    for path in ("/", "/buildinfo", "/buildinfo/version"):
        r = _pyxen("ls", path)
        assert r.returncode == 0, r.stderr
        assert r.stdout == run_tool("xenhypfs", "ls", path), path
    r = _pyxen("tree")
    assert r.returncode == 0 and r.stdout == run_tool("xenhypfs", "tree")


def test_leaves_read_as_xenhypfs_cat_prints_them(fs):
    import pyxen.hypfs as H
    leaves = [(p, e) for p, e in fs.walk("/") if e.type != H.EntryType.DIR]
    assert len(leaves) >= 5
    compared = 0
    for path, e in leaves:
        if e.type == H.EntryType.BLOB:
            continue
        assert fs.read(path) + "\n" == run_tool("xenhypfs", "cat", path), path
        compared += 1
        if compared >= 40:
            break
    assert compared >= 3


def test_typed_values(fs, xl_info):
    import pyxen.hypfs as H
    assert fs.value("/buildinfo/version/major") == int(xl_info["xen_major"])
    assert fs.value("/buildinfo/version/minor") == int(xl_info["xen_minor"])
    assert fs.stat("/buildinfo/version/major").type == H.EntryType.UINT
    assert "major" in fs.value("/buildinfo/version")
    cfg = fs.value("/buildinfo/config")   # the hypervisor's .config: a gzip'd string node
    assert isinstance(cfg, str) and "CONFIG_HYPFS=y" in cfg
    assert fs.stat("/buildinfo/config").encoding == H.Encoding.GZIP


def test_errors_are_typed(fs):
    import pyxen.hypfs as H
    with pytest.raises(H.HypfsNotFound):
        fs.read("/no/such/node")
    with pytest.raises(H.HypfsNotFound):
        fs.ls("/no-such-dir")
    assert not fs.stat("/buildinfo/version/major").writable
    with pytest.raises(H.HypfsPermissionError):
        fs.write("/buildinfo/version/major", 5)
    assert fs.value("/buildinfo/version/major") != 5
    for bad in ("relative", "/a\0b", None, b"/buildinfo"):
        with pytest.raises(H.HypfsPathError):
            fs.read(bad)  # type: ignore[arg-type]
    r = _pyxen("cat", "/no/such/node")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "xenhypfs_read" in r.stderr


def test_shared_by_threads_and_closed_from_one():
    """8 threads read while a ninth closes the handle: each call succeeds or raises the
    closed-handle error, and the process survives."""
    import pyxen.hypfs as H
    fs = H.open()
    bad: list[BaseException] = []
    done = threading.Barrier(9)

    def reader():
        done.wait()
        for _ in range(300):
            try:
                assert fs.value("/buildinfo/version/major") >= 4
            except HandleClosedError:
                pass
            except BaseException as e:  # noqa: BLE001 - collected for the assert
                bad.append(e)
                return
    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    done.wait()
    fs.close()
    for t in threads:
        t.join()
    assert not bad, bad[:3]
    with pytest.raises(HandleClosedError):
        fs.read("/buildinfo/version/major")
    fs.close()
