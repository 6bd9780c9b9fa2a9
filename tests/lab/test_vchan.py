"""pyxen.vchan against real Xen: a Server and a Client, both in dom0 (domid 0 talks to
itself through libxenvchan: the grants, the event channel and the xenstore entries are
real), moving data both ways, blocking and with asyncio."""

import asyncio
import hashlib
import itertools
import os
import threading
import time

import pytest

from pyxen import vchan
from pyxen.errors import (ArgumentError, ArgumentTypeError, HandleClosedError, PyxenError,
                          VchanError, VchanIncompleteReadError, VchanNotFoundError,
                          VchanPeerClosedError, VchanTimeoutError)

MIB = 1 << 20
_n = itertools.count()


def fresh_path() -> str:
    return f"/local/domain/0/data/pyxen-vchan-{os.getpid()}-{next(_n)}"


@pytest.fixture
def path(xs):
    p = fresh_path()
    yield p
    assert not xs.exists(p + "/ring-ref"), "the server left its xenstore entries"


def connect(p, read_min=0, write_min=0):
    server = vchan.Server(0, p, read_min, write_min)
    client = vchan.Client(0, p)
    assert server.wait_connected(timeout=60)
    return server, client


def test_hello_both_ways(path, xs):
    server, client = connect(path)
    with server, client:
        assert xs.exists(path + "/ring-ref") and xs.exists(path + "/event-channel")
        assert server.is_open() and client.is_open() and server.connected()
        assert client.write(b"hello") == 5
        assert server.read(100, timeout=60) == b"hello"
        assert server.write(memoryview(b"..world")[2:]) == 5
        assert client.read_exact(5, timeout=60) == b"world"
        assert server.data_ready() == 0 and client.data_ready() == 0
        assert server.recv(10) == b""              # nothing there: does not block
        assert client.buffer_space() > 0
        while server.wait(timeout=0):            # take the events the exchange left
            pass
        server.wait(timeout=0.2)   # a late event may still come: only that it does not hang
        assert isinstance(server.fileno(), int) and server.fileno() != client.fileno()


def pump(src, dst, data, chunk, sums, key):
    """Thread bodies: src writes ``data``; dst reads len(data) bytes and hashes them."""
    def writer():
        view = memoryview(data)
        for off in range(0, len(view), chunk):
            src.write(view[off:off + chunk], timeout=120)

    def reader():
        h = hashlib.sha256()
        buf = bytearray(256 * 1024)
        left = len(data)
        while left:
            n = dst.readinto(memoryview(buf)[:min(left, len(buf))], timeout=120)
            h.update(memoryview(buf)[:n])
            left -= n
        sums[key] = h.hexdigest()
    return writer, reader


@pytest.mark.parametrize("read_min,write_min,size", [
    (0, 0, 2 * MIB),                  # in-page rings (1 and 2 KiB)
    (MIB, MIB, 10 * MIB),             # the largest rings: 256 pages each way
    (8192, 64 * 1024, 10 * MIB),      # uneven: 2 and 16 pages
], ids=["small", "big", "uneven"])
def test_exchange_both_directions(path, read_min, write_min, size):
    down, up = os.urandom(size), os.urandom(size)
    server, client = connect(path, read_min, write_min)
    sums: dict = {}
    with server, client:
        bodies = pump(server, client, down, 1 << 20, sums, "down") + \
            pump(client, server, up, 300_000, sums, "up")
        errors = []

        def run(fn):
            try:
                fn()
            except BaseException as e:   # reported below
                errors.append(e)
        threads = [threading.Thread(target=run, args=(b,)) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert not any(t.is_alive() for t in threads), "a transfer hung"
        assert not errors, errors
    assert sums == {"down": hashlib.sha256(down).hexdigest(),
                    "up": hashlib.sha256(up).hexdigest()}


def test_exchange_asyncio(path):
    size = 10 * MIB
    down, up = os.urandom(size), os.urandom(size)

    async def main():
        srv_task = asyncio.ensure_future(
            vchan.start_server(0, path, 256 * 1024, 256 * 1024, timeout=60))
        await asyncio.sleep(0)              # the server advertises itself first
        c_reader, c_writer = await vchan.open_connection(0, path)
        s_reader, s_writer = await srv_task

        async def send(writer, data):
            view = memoryview(data)
            for off in range(0, size, 500_000):
                writer.write(view[off:off + 500_000])
                await writer.drain()

        async def receive(reader):
            h = hashlib.sha256()
            left = size
            while left:
                chunk = await reader.read(min(left, 1 << 17))
                assert chunk, "early EOF"
                h.update(chunk)
                left -= len(chunk)
            return h.hexdigest()

        results = await asyncio.wait_for(asyncio.gather(
            send(s_writer, down), send(c_writer, up), receive(c_reader),
            receive(s_reader)), 300)
        # EOF: the server goes; the client reads b"" (and at_eof), its writer fails
        s_writer.close()
        await s_writer.wait_closed()
        assert await asyncio.wait_for(c_reader.read(10), 60) == b""
        assert c_reader.at_eof()
        with pytest.raises(VchanPeerClosedError):
            c_writer.write(b"x")
            await c_writer.drain()
        c_writer.close()
        return results[2:]

    got = asyncio.run(main())
    assert got == [hashlib.sha256(down).hexdigest(), hashlib.sha256(up).hexdigest()]


def test_peer_close_detected(path):
    server, client = connect(path)
    with server:
        client.write(b"last words")
        client.close()
        # what was written before the close is still read; then the close shows
        assert server.read_exact(10, timeout=60) == b"last words"
        with pytest.raises(VchanPeerClosedError) as e:
            server.read(1, timeout=60)
        assert isinstance(e.value, BrokenPipeError) and e.value.path == path
        assert not server.is_open()
        with pytest.raises(VchanPeerClosedError):
            server.write(b"anyone?", timeout=60)
        with pytest.raises(VchanPeerClosedError):
            server.recv(1)


def test_server_close_seen_by_client(path):
    server, client = connect(path)
    with client:
        server.write(b"abc")
        server.close()
        with pytest.raises(VchanIncompleteReadError) as e:
            client.read_exact(10, timeout=60)
        assert e.value.partial == b"abc" and e.value.expected == 10
        assert not client.is_open()
        with pytest.raises(VchanPeerClosedError):
            client.send(b"x")


def _blocked(call):
    """Run ``call`` in a thread; the exception it ends with (None if it returned)."""
    out = {}

    def body():
        try:
            call()
        except BaseException as e:
            out["e"] = e
    t = threading.Thread(target=body)
    t.start()
    return t, out


def test_close_from_another_thread_wakes_reader(path):
    server, client = connect(path)
    with server:
        started = threading.Event()

        def read():
            started.set()
            client.read(100)             # no timeout: only the close can end it
        t, out = _blocked(read)
        started.wait(60)
        time.sleep(0.5)                  # let the reader reach its wait (not asserted)
        client.close()
        t.join(60)
        assert not t.is_alive(), "the reader was not woken by close()"
        assert isinstance(out.get("e"), HandleClosedError)
        client.close()                   # idempotent


def test_close_from_another_thread_wakes_writer(path):
    server, client = connect(path)     # server writes into a 2 KiB ring nobody reads
    with client:
        t, out = _blocked(lambda: server.write(b"x" * 100_000))
        # the writer fills the ring, then waits for space
        for _ in range(600):
            if server.buffer_space() == 0:
                break
            time.sleep(0.1)
        assert server.buffer_space() == 0
        server.close()
        t.join(60)
        assert not t.is_alive(), "the writer was not woken by close()"
        assert isinstance(out.get("e"), HandleClosedError)


def test_timeouts(path):
    server, client = connect(path)
    with server, client:
        with pytest.raises(VchanTimeoutError):
            client.read(10, timeout=0.2)
        with pytest.raises(VchanTimeoutError):
            client.read_exact(10, timeout=0.2)
        space = server.buffer_space()
        with pytest.raises(VchanTimeoutError) as e:
            server.write(b"y" * (space + 1000), timeout=0.3)
        assert e.value.done == space
        assert server.send(b"z") == 0            # full: non-blocking send takes nothing
        assert client.read_exact(space, timeout=60) == b"y" * space
        assert client.wait(timeout=0.2) in (True, False)  # an event, or none: no hang


def test_use_after_close(path):
    server, client = connect(path)
    client.close()
    server.close()
    buf = bytearray(4)
    for h in (server, client):
        calls = [lambda h=h: h.write(b"x"), lambda h=h: h.send(b"x"), lambda h=h: h.read(1),
                 lambda h=h: h.readinto(buf), lambda h=h: h.read_exact(1),
                 lambda h=h: h.recv(1), h.data_ready, h.buffer_space, h.is_open, h.fileno,
                 h.wait, h.streams]
        for call in calls:
            with pytest.raises(HandleClosedError):
                call()
        h.close()


def test_bad_input(path):
    with pytest.raises(VchanNotFoundError):
        vchan.Client(0, path)                    # no server there
    with pytest.raises(ArgumentError):
        vchan.Client(0x7FF0, path)
    with pytest.raises(ArgumentTypeError):
        vchan.Server("0", path)
    with pytest.raises(ArgumentError):
        vchan.Server(0, path + "//x")
    with pytest.raises(ArgumentError):
        vchan.Server(0, "/local/domain/0/data/" + "x" * 40)   # libxenvchan would cut it
    with pytest.raises(ArgumentError):
        vchan.Server(0, path, read_min=vchan.MAX_RING + 1)
    with pytest.raises(ArgumentError):
        vchan.Server(0, path, write_min=-1)
    # a server offered to domain 0, a client claiming it is domain 7 (no such domain)
    with vchan.Server(0, path) as server:
        with pytest.raises(VchanError) as e:
            vchan.Client(7, path)
        assert e.value.errno and e.value.call == "libxenvchan_client_init"
        assert not server.connected()
        with pytest.raises(ArgumentTypeError):
            server.readinto(b"read-only")
        with pytest.raises(ArgumentError):
            server.read(-1)
        with pytest.raises(ArgumentError):
            server.wait(timeout=-1)


def test_server_for_absent_domain(path):
    # Xen grants to and binds for a domid that does not exist (yet): the server waits
    try:
        server = vchan.Server(12345, path)
    except PyxenError:
        return                                    # refused: as good
    with server:
        assert not server.connected()
        assert server.wait_connected(timeout=0.2) is False
