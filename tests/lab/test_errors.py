"""pyxen.errors against the real Xen: the typed errors that need a live handle (the pure
mappings are tested on the host, tests/host/test_errors.py)."""

import errno
import threading

import pytest

import pyxen.errors as E
import pyxen.guest as G
import pyxen.light as L
from pyxen.errors import DomainNotFoundError, PyxenError

BASE = "/local/domain/0/pyxen-test-errors"
UNUSED_DOMID = 7003


@pytest.fixture
def node(xs):
    xs.rm(BASE)
    yield BASE
    xs.rm(BASE)


@pytest.fixture(scope="module")
def ctx():
    with L.open() as c:
        yield c


# ------------------------------------------------------------------------- xenstore

@pytest.mark.parametrize("value", [42, 0, True, None, [1, 2], 1.5])
def test_write_of_a_non_bytes_value_is_typed_and_writes_nothing(xs, node, value):
    # bug: xs.write(path, 42) wrote bytes(42), forty-two NUL bytes
    path = f"{node}/v"
    with pytest.raises(E.XenStoreValueTypeError) as ei:
        xs.write(path, value)
    assert isinstance(ei.value, TypeError) and isinstance(ei.value, PyxenError)
    assert xs.get(path) is None
    with xs.transaction() as t:
        with pytest.raises(E.XenStoreValueTypeError):
            t.write(path, value)
    assert xs.get(path) is None


def test_write_of_bytes_likes_still_works(xs, node):
    xs.write(f"{node}/a", bytearray(b"ab"))
    xs.write(f"{node}/m", memoryview(b"\x00cd"))
    xs.write(f"{node}/s", "é")
    assert xs.read(f"{node}/a") == b"ab" and xs.read(f"{node}/m") == b"\x00cd"
    assert xs.read(f"{node}/s") == "é".encode()


def test_bytearray_path_is_a_path(xs, node):
    # bug: a bytearray path crashed the hot path's cache lookup with "unhashable type"
    p = bytearray(f"{node}/ba".encode())
    xs.write(p, b"v1")
    assert xs.read(p) == b"v1" and xs.get(p) == b"v1"
    assert xs.ls(bytearray(node.encode())) == ["ba"]
    assert xs.exists(p)
    xs.rm(p)
    assert not xs.exists(p)
    with pytest.raises(E.XenStoreNotFound):
        xs.read(p)


@pytest.mark.parametrize("bad", [bytearray(b"/a//b"), bytearray(b"/a\0b"), bytearray(b"")])
def test_bad_bytearray_path_is_the_typed_path_error(xs, bad):
    for call in (xs.read, xs.ls, lambda p: xs.write(p, b"x")):
        with pytest.raises(E.XenStorePathError) as ei:
            call(bad)
        assert isinstance(ei.value, ValueError)


@pytest.mark.parametrize("bad", [42, ["/local"], None])
def test_path_of_a_wrong_type_is_the_typed_path_error(xs, bad):
    for call in (xs.read, xs.ls, lambda p: xs.write(p, b"x")):
        with pytest.raises(E.XenStorePathTypeError) as ei:
            call(bad)
        assert isinstance(ei.value, TypeError)


# ----------------------------------------------------------------------------- libxl

def test_missing_device_of_an_existing_domain_is_not_domain_not_found(ctx):
    # bug: ERROR_NOTFOUND always read as "no such domain"
    assert ctx.exists(0)
    with pytest.raises(E.LibxlDeviceNotFound) as ei:
        ctx.disk_remove(0, "xvdz")
    assert not isinstance(ei.value, DomainNotFoundError)
    assert isinstance(ei.value, E.DeviceNotFoundError) and isinstance(ei.value, L.LibxlError)
    assert ei.value.domid == 0 and "xvdz" in str(ei.value)
    with pytest.raises(E.LibxlDeviceNotFound) as ei:
        ctx.nic_remove(0, 99)
    assert not isinstance(ei.value, DomainNotFoundError) and ei.value.errno == errno.ENOENT


def test_device_call_on_a_missing_domain_is_domain_not_found(ctx):
    assert not ctx.exists(UNUSED_DOMID)
    for call in (lambda: ctx.disk_remove(UNUSED_DOMID, "xvdz"),
                 lambda: ctx.nic_remove(UNUSED_DOMID, 0),
                 lambda: ctx.disk_list(UNUSED_DOMID)):
        with pytest.raises(L.DomainNotFound) as ei:
            call()
        assert not isinstance(ei.value, E.DeviceNotFoundError)
        assert ei.value.errno == errno.ESRCH


def test_libxl_codes_are_the_compiled_constants(ctx):
    lib = ctx._lib
    with pytest.raises(L.DomainNotFound) as ei:
        ctx.info(UNUSED_DOMID)
    assert ei.value.rc == lib.ERROR_DOMAIN_NOTFOUND and ei.value.code == "DOMAIN_NOTFOUND"
    with pytest.raises(L.LibxlInvalid) as ei:
        ctx.set_memory_target(0, 0)
    assert ei.value.rc == lib.ERROR_INVAL and ei.value.code == "INVAL"


# ------------------------------------------------------------------------- libxenctrl

def test_each_thread_gets_its_own_errno(xc):
    # bug: ctrl._check read the handle's shared last error (xc_get_last_error). Two
    # threads fail on one handle at once, differently; each sees only its own errno.
    rounds = 200
    start = threading.Barrier(2)
    seen: dict[str, list] = {"missing": [], "badvcpu": []}

    def missing() -> None:
        start.wait()
        for _ in range(rounds):
            try:
                xc.pause(UNUSED_DOMID)
            except Exception as e:  # recorded, checked below
                seen["missing"].append(e)

    def badvcpu() -> None:
        start.wait()
        for _ in range(rounds):
            try:
                xc.vcpu_info(0, 4000)   # dom0 has fewer vcpus: EINVAL from Xen
            except Exception as e:
                seen["badvcpu"].append(e)

    threads = [threading.Thread(target=missing), threading.Thread(target=badvcpu)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen["missing"]) == rounds and len(seen["badvcpu"]) == rounds
    for e in seen["missing"]:
        assert type(e) is E.NoSuchDomainError and e.errno == errno.ESRCH, repr(e)
        assert e.call == "xc_domain_pause" and e.domid == UNUSED_DOMID and e.detail is None
    for e in seen["badvcpu"]:
        assert type(e) is E.XenInvalidArgumentError and e.errno == errno.EINVAL, repr(e)
        assert e.call == "xc_vcpu_getinfo" and e.domid == 0


# ------------------------------------------------------------------------------ guest

def test_console_tty_timeout_is_a_pyxen_error(xs):
    # bug: console_tty raised the builtin TimeoutError
    with pytest.raises(E.ConsoleTimeoutError) as ei:
        G.console_tty(UNUSED_DOMID, xs=xs, timeout=0.3)
    assert isinstance(ei.value, TimeoutError) and isinstance(ei.value, PyxenError)
    assert str(UNUSED_DOMID) in str(ei.value)
