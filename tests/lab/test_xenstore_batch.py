"""pyxen.xenstore's pipelined batches against the lab dom0's real xenstored."""

import errno
import threading
import uuid

import pytest

import pyxen.xenstore as X
from pyxen import _xswire


@pytest.fixture
def base(xs):
    path = f"/pyxen-batch/{uuid.uuid4().hex[:12]}"
    xs.mkdir(path)
    yield path
    try:
        xs.rm(path)
    except X.XenStoreError:
        pass


def test_results_equal_one_at_a_time_calls(xs, base):
    for i in range(10):
        xs.write(f"{base}/d/c{i}", str(i))
    xs.set_permissions(f"{base}/d/c3", "n0 r1")
    with xs.batch() as b:
        reads = [b.read(f"{base}/d/c{i}") for i in range(10)]
        names = b.ls(f"{base}/d")
        perms = b.get_permissions(f"{base}/d/c3")
        w = b.write(f"{base}/new/deep", b"\x00bin\xff")
        m = b.mkdir(f"{base}/made")
        sp = b.set_permissions(f"{base}/made", X.Permissions(0, X.Perm.READ))
        after = b.read(f"{base}/new/deep")     # sees the write queued before it
        gone = b.rm(f"{base}/d/c9")
    assert [r.value for r in reads] == [xs.read(f"{base}/d/c{i}") for i in range(9)] + [b"9"]
    assert sorted(names.value) == sorted(xs.ls(f"{base}/d") + ["c9"])
    assert perms.value == xs.get_permissions(f"{base}/d/c3") == X.Permissions.parse("n0 r1")
    assert w.value is None and m.value is None and sp.value is None and gone.value is None
    assert after.value == b"\x00bin\xff" == xs.read(f"{base}/new/deep")
    assert xs.read(f"{base}/made") == b""
    assert xs.get_permissions(f"{base}/made") == X.Permissions(0, X.Perm.READ)
    assert not xs.exists(f"{base}/d/c9")
    assert b.results[:10] == [str(i).encode() for i in range(10)]
    # run() form, and str values, and relative paths (the connection's home, dom0's)
    b2 = xs.batch()
    b2.write(f"{base}/s", "h\u00e9")
    b2.read(f"{base}/s")
    b2.read("domid")
    assert b2.run() == [None, "h\u00e9".encode(), xs.read("domid")]


def test_error_in_the_middle_raises_the_first_and_applies_the_rest(xs, base):
    b = xs.batch()
    b.write(f"{base}/a", b"1")
    missing = b.read(f"{base}/missing")
    b.write(f"{base}/b", b"2")
    also = b.ls(f"{base}/missing-too")
    last = b.read(f"{base}/a")
    with pytest.raises(X.XenStoreNotFound) as ei:
        b.run()
    assert ei.value.errno == errno.ENOENT and ei.value.path == f"{base}/missing"
    assert ei.value.call == "xs_read"
    assert missing.error is ei.value and isinstance(also.error, X.XenStoreNotFound)
    assert also.error.path == f"{base}/missing-too"
    with pytest.raises(X.XenStoreNotFound):
        missing.value  # noqa: B018 - the property raises
    assert last.value == b"1"
    assert xs.read(f"{base}/a") == b"1" and xs.read(f"{base}/b") == b"2"
    assert [r.ok for r in b.replies] == [True, False, True, False, True]
    # the connection is still good for the next batch
    with xs.batch() as b2:
        r = b2.read(f"{base}/b")
    assert r.value == b"2"


def test_batch_in_a_transaction_and_its_conflict(xs, base):
    node = f"{base}/c"
    xs.write(node, b"0")
    with xs.batch_transaction() as t:
        with t.batch() as b:
            b.write(f"{base}/t1", b"x")
            r = b.read(node)
        assert r.value == b"0"
        assert not xs.exists(f"{base}/t1")        # not visible outside before commit
        assert t.read(f"{base}/t1") == b"x"
    assert t.state == "committed" and xs.read(f"{base}/t1") == b"x"

    with X.open() as other:
        with pytest.raises(X.TransactionConflict) as ei:
            with xs.batch_transaction() as t:
                with t.batch() as b:
                    r = b.read(node)
                other.write(node, b"100")        # another writer commits in between
                with t.batch() as b:
                    b.write(node, str(int(r.value) + 1))
                    b.write(f"{base}/t2", b"lost")
        assert ei.value.errno == errno.EAGAIN and t.state == "conflicted"
        assert xs.read(node) == b"100" and not xs.exists(f"{base}/t2")

        runs = 0

        def body(t):
            nonlocal runs
            runs += 1
            with t.batch() as b:
                r = b.read(node)
            if runs < 3:
                other.write(node, str(int(r.value) + 10))
            with t.batch() as b:
                b.write(node, str(int(r.value) + 1))
                b.write(f"{base}/runs", str(runs))
            return runs
        assert xs.batch_transact(body, backoff=0) == 3
    assert xs.read(node) == b"121" and xs.read(f"{base}/runs") == b"3"
    # aborting leaves nothing behind; a libxenstore transaction cannot hold a batch
    with pytest.raises(ZeroDivisionError):
        with xs.batch_transaction() as t:
            t.write(f"{base}/aborted", b"x")
            1 / 0  # noqa: B018
    assert t.state == "aborted" and not xs.exists(f"{base}/aborted")
    with xs.transaction() as lt:
        with pytest.raises(X.TransactionUsageError):
            lt.batch()


def test_batches_from_eight_threads(xs, base):
    errors = []

    def worker(k):
        try:
            for rnd in range(5):
                with xs.batch() as b:
                    for i in range(60):
                        b.write(f"{base}/t{k}/n{i}", f"{k}-{rnd}-{i}")
                    rs = [b.read(f"{base}/t{k}/n{i}") for i in range(60)]
                want = [f"{k}-{rnd}-{i}".encode() for i in range(60)]
                assert [r.value for r in rs] == want
            def tx_body(t):
                with t.batch() as b:
                    for i in range(10):
                        b.write(f"{base}/t{k}/tx{i}", str(i))
            xs.batch_transact(tx_body)
        except BaseException as e:   # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for k in range(8):
        assert xs.read(f"{base}/t{k}/n59") == f"{k}-4-59".encode()
        assert sorted(xs.ls(f"{base}/t{k}")) == sorted(
            [f"n{i}" for i in range(60)] + [f"tx{i}" for i in range(10)])


def test_over_quota_batch_is_windowed(xs, base):
    n = 5000
    assert n > 1024 > _xswire.WINDOW           # beyond oxenstored's and C xenstored's
    with xs.batch() as b:
        for i in range(n):
            b.write(f"{base}/q/{i % 50}/n{i}", str(i))
        reads = [b.read(f"{base}/q/{i % 50}/n{i}") for i in range(n)]
    assert len(b.replies) == 2 * n
    assert [r.value for r in reads] == [str(i).encode() for i in range(n)]
    assert xs.read(f"{base}/q/49/n4999") == b"4999"
    assert len(xs.ls(f"{base}/q/7")) == n // 50


def test_hostile_input_is_typed(xs, base):
    b = xs.batch()
    for bad in ("", "/a//b", "/a/", "/sp ace", "/\u00e9", "/a\0b", "@introduceDomain",
                "/" + "x" * 3100):
        with pytest.raises(X.XenStorePathError):
            b.read(bad)
        with pytest.raises(X.XenStorePathError):
            b.write(bad, b"v")
    for bad in (None, 42, ["/a"]):
        with pytest.raises(X.XenStorePathError):
            b.read(bad)
    with pytest.raises(X.XenStoreValueTypeError):
        b.write(f"{base}/v", 42)
    with pytest.raises(X.XenStoreTooBigError) as ei:
        b.write(f"{base}/v", b"x" * 5000)
    assert ei.value.errno == errno.E2BIG
    with pytest.raises(X.XenStorePermsError):
        b.set_permissions(f"{base}/v", "q0")
    assert len(b) == 0                          # nothing was queued
    # a value filling the payload: the wire takes it; xenstored may refuse it by its own
    # quota (oxenstored's quota-maxsize, 2048 B in Debian's config) exactly as it
    # refuses libxenstore's xs_write of it, and the rest of the batch is applied
    path = f"{base}/v"
    full = b"y" * (X.XENSTORE_PAYLOAD_MAX - len(path) - 1)
    try:
        xs.write(f"{base}/single", full)
        single = None
    except X.XenStoreError as e:
        single = e
    b.write(path, full)
    r = b.read(path)
    b.rm(f"{base}/never-there")                 # xenstored: success
    b.write(f"{base}/after", b"z")
    if single is None:
        b.run()
        assert r.value == full
    else:
        with pytest.raises(type(single)) as ei:
            b.run()
        assert ei.value.errno == single.errno and ei.value.path == path
        assert isinstance(r.error, X.XenStoreNotFound)
    assert [x.ok for x in b.replies[2:]] == [True, True] and xs.read(f"{base}/after") == b"z"
    with pytest.raises(X.TransactionUsageError):
        b.run()
    # what xenstored itself refuses comes back typed, the rest of the batch applied
    # (a 2 KiB relative path: oxenstored's quota-path-max, 1024, makes it EINVAL; else
    # it is a missing node): the same class and errno as libxenstore's xs_read of it
    rel = "x" * 2000 + "/y"
    with pytest.raises(X.XenStoreError) as single:
        xs.read(rel)
    b = xs.batch()
    b.write(f"{base}/ok", b"1")
    long_rel = b.read(rel)
    with pytest.raises(type(single.value)) as ei:
        b.run()
    assert ei.value.errno == single.value.errno and long_rel.error is ei.value
    assert xs.read(f"{base}/ok") == b"1"


def test_watches_see_batched_writes(xs, base):
    with xs.watch(base) as w:
        assert w.read(30).path == base             # the registration event
        with xs.batch() as b:
            for i in range(5):
                b.write(f"{base}/w{i}", b"x")
        seen = set()
        while len(seen) < 5:
            ev = w.read(30)
            assert ev is not None
            if ev.path != base:
                seen.add(ev.path)
    assert seen == {f"{base}/w{i}" for i in range(5)}


def test_close_from_another_thread(base):
    h = X.open()
    stop = threading.Event()
    outcomes = []

    def worker():
        while not stop.is_set():
            try:
                with h.batch() as b:
                    for i in range(30):
                        b.write(f"{base}/cl{i}", b"x")
                outcomes.append("ok")
            except X.HandleClosedError:
                outcomes.append("closed")
                return
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    while len(outcomes) < 8:
        threading.Event().wait(0.01)
    threading.Thread(target=h.close).start()
    for t in threads:
        t.join(60)
    stop.set()
    assert all(not t.is_alive() for t in threads)
    assert outcomes.count("closed") == 4 and "ok" in outcomes
    with pytest.raises(X.HandleClosedError):
        h.batch()
    h.close()
    assert h._pool.idle == []
