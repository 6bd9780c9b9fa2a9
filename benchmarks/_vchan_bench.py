"""pyxen.vchan throughput against C, in the lab dom0.

    python3 -m pyxen.lab run -- python3 benchmarks/_vchan_bench.py --json

64 MiB from a server to a client, both in dom0 (domid 0 to itself), 256 KiB rings: pyxen
(the server writes 1 MiB slices with ``Server.write``, the client reads into one 256 KiB
buffer with ``Client.readinto`` in a second thread) against C doing the same
(benchmarks/vchan_pair.c, compiled here with gcc against -lxenvchan, two threads, the
library's blocking mode). Both time server init to the last byte read and sum one byte per
4 KiB page to check the data. Interleaved rounds, the best counts; ratio = pyxen's time /
C's (lower is better). Timings are never asserted; with --json, one JSON line last.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(1, os.path.dirname(os.path.abspath(__file__)))

from _common import print_json, result  # noqa: E402

from pyxen import vchan  # noqa: E402

SIZE = 64 << 20
RING = 256 << 10
CHUNK = 1 << 20
READ_BUF = 256 << 10
GOAL = 2.0
HERE = os.path.dirname(os.path.abspath(__file__))


def _pattern() -> bytes:
    return bytes((i * 7 + 3) & 0xFF for i in range(CHUNK))


def expected_sum(size: int = SIZE) -> int:
    data = _pattern()
    total = 0
    for off in range(0, size, 4096):
        total += data[off % CHUNK]
    return total


def time_pyxen(path: str, size: int = SIZE) -> tuple[float, int]:
    data = memoryview(_pattern())
    out: dict = {}

    def client() -> None:
        try:
            with vchan.Client(0, path) as c:
                buf = bytearray(READ_BUF)
                view = memoryview(buf)
                got = total = 0
                while got < size:
                    n = c.readinto(view, timeout=120)
                    total += sum(view[(-got) % 4096:n:4096])   # the bytes at 4 KiB offsets
                    got += n
                out["sum"] = total
        except BaseException as e:
            out["error"] = e

    t0 = time.perf_counter()
    with vchan.Server(0, path, RING, RING) as s:
        t = threading.Thread(target=client)
        t.start()
        for off in range(0, size, CHUNK):
            s.write(data[:min(CHUNK, size - off)], timeout=120)
        t.join(300)
        t1 = time.perf_counter()
    if "error" in out:
        raise out["error"]
    return t1 - t0, out["sum"]


class CPair:
    """benchmarks/vchan_pair.c, built in a temporary directory."""

    def __init__(self, tmp: str):
        self.exe = os.path.join(tmp, "vchan_pair")
        subprocess.run(["gcc", "-O2", "-o", self.exe, os.path.join(HERE, "vchan_pair.c"),
                        "-lxenvchan", "-lpthread"], check=True)

    def time(self, path: str, size: int = SIZE) -> tuple[float, int]:
        out = subprocess.run([self.exe, path, str(size), str(RING)], check=True,
                             capture_output=True, text=True, timeout=600).stdout.split()
        return float(out[0]), int(out[1])


def run(rounds: int = 3) -> dict:
    """64 MiB server→client through pyxen.vchan and through C: the result dict."""
    want = expected_sum()
    best = {"pyxen": float("inf"), "c": float("inf")}
    with tempfile.TemporaryDirectory() as tmp:
        c = CPair(tmp)
        for r in range(rounds):
            for impl in ("c", "pyxen"):
                path = f"/local/domain/0/data/pyxen-bench-{os.getpid()}-{impl}{r}"
                secs, total = (c.time if impl == "c" else time_pyxen)(path)
                if total != want:
                    raise RuntimeError(f"{impl}: checksum {total} != {want}")
                best[impl] = min(best[impl], secs)
    mib = SIZE / (1 << 20)
    detail = (f"64 MiB server->client in dom0, 256 KiB rings, best of {rounds}: pyxen "
              f"{best['pyxen']:.3f} s ({mib / best['pyxen']:.0f} MiB/s), C "
              f"{best['c']:.3f} s ({mib / best['c']:.0f} MiB/s)")
    return result("vchan_64m_vs_c", best["pyxen"] / best["c"], GOAL, detail)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the JSON results line last")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    res = run(args.rounds)
    if args.json:
        print_json([res])
    else:
        print(f"{res['name']}: ratio {res['ratio']} (goal {res['goal']}): {res['detail']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
