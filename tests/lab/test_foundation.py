"""The first vertical slice, compared with what `xl info` prints in the same dom0."""

import os
import subprocess
import sys

import pyxen.ctrl
import pyxen.xenstore


def _fresh_xl_info() -> dict:
    out = subprocess.run(["xl", "info"], check=True, capture_output=True, text=True).stdout
    return {k.strip(): v.strip() for k, v in
            (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def test_version_matches_xl_info(xc, xl_info):
    v = xc.version()
    assert v.major == int(xl_info["xen_major"])
    assert v.minor == int(xl_info["xen_minor"])
    assert v.extra == xl_info["xen_extra"]
    assert v.release == xl_info["xen_version"]
    from pyxen._native import built_version
    assert (v.major, v.minor) == built_version()
    assert " ".join(v.capabilities) == xl_info["xen_caps"]
    assert v.pagesize == int(xl_info["xen_pagesize"])
    assert v.commandline == xl_info["xen_commandline"]


def test_physinfo_matches_xl_info(xc, xl_info):
    p = xc.physinfo()
    assert p.nr_cpus == int(xl_info["nr_cpus"])
    assert p.cores_per_socket == int(xl_info["cores_per_socket"])
    assert p.threads_per_core == int(xl_info["threads_per_core"])
    assert p.nr_nodes == int(xl_info["nr_nodes"])
    assert p.total_memory_mb == int(xl_info["total_memory"])
    # free memory moves as guests come and go: compare with a fresh `xl info`
    assert abs(p.free_memory_mb - int(_fresh_xl_info()["free_memory"])) <= 16
    assert " ".join(p.virt_caps.xl_names()) == xl_info["virt_caps"]
    assert ":".join(f"{c:08x}" for c in p.hw_caps) == xl_info["hw_caps"]
    assert pyxen.ctrl.VirtCaps.PV in p.virt_caps
    assert p.virt_caps.hvm_capable == ("hvm" in xl_info["virt_caps"].split())


def test_xenstore_reads_dom0_name(xs):
    assert xs.read("/local/domain/0/name") == b"Domain-0"


def test_domain_list_has_dom0(xc):
    doms = xc.domains()
    assert doms[0].domid == 0
    assert doms[0].online_vcpus == 2
    assert doms[0].memory_kb > 1_000_000


def test_handles_close_idempotently():
    xc = pyxen.ctrl.open()
    xc.close()
    xc.close()
    assert xc.closed
    try:
        xc.version()
    except ValueError as e:
        assert "closed" in str(e)
    else:
        raise AssertionError("a closed handle must refuse calls")
    with pyxen.xenstore.open() as xs:
        pass
    xs.close()
    assert xs.closed


def test_cli_info_in_process():
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "pyxen", "info"], capture_output=True,
                         text=True, check=True, env=env).stdout
    from pyxen._native import built_version
    assert "xen_version" in out and "%d.%d" % built_version() in out


def test_built_against_this_xen(xc):
    from pyxen._native import xen
    _, lib = xen()
    v = xc.version()
    assert (lib.pyxen_built_xen_major, lib.pyxen_built_xen_minor) == (v.major, v.minor)


def test_dom0_runs_the_installed_package():
    """The lab installs the checkout's sdist: jobs import that copy, never the source tree."""
    import importlib.metadata
    import shutil

    import pyxen
    site = "/lab/work/.pyxen-lab/site"
    assert pyxen.__file__.startswith(site + "/pyxen/"), pyxen.__file__
    assert not os.path.exists("/lab/work/pyxen"), "the work disk carries no source package"
    assert pyxen.__version__ == importlib.metadata.version("pyxen") != "0+unknown"
    for name in ("_xen", "_cpuid"):
        assert any(f.startswith(name + ".") and f.endswith(".so")
                   for f in os.listdir(os.path.dirname(pyxen.__file__))), name
    assert os.path.exists(os.path.join(os.path.dirname(pyxen.__file__), "py.typed"))
    script = shutil.which("pyxen")
    assert script == site + "/bin/pyxen", script
    out = subprocess.run(["pyxen", "--version"], capture_output=True, text=True, cwd="/",
                         check=True).stdout
    assert out.strip() == f"pyxen {pyxen.__version__}"
    # the console script works from anywhere and exits like xl: 0, or 1 with one line
    ok = subprocess.run(["pyxen", "virt-caps", "--json"], capture_output=True, text=True,
                        cwd="/")
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(["pyxen", "mem-set", "no-such-domain-pyxen", "128"], capture_output=True,
                         text=True, cwd="/")
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_libxlutil_layout_mirror_matches_this_release():
    """pyxen's listing of a parsed config (a mirror of libxlutil's private list) agrees with
    this release's libxlutil, and a config lists its settings with their lines."""
    import pyxen.config as config
    config.check_layout()
    raw = config.parse_raw("name = 'x'\nmemory = 128\ndisk = [ 'a', 'b' ]\n")
    assert raw == {"name": ("x", 1), "memory": ("128", 2), "disk": (["a", "b"], 3)}
