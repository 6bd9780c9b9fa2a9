"""A pyxen.ring backend in its own process, for tests/lab/test_ring.py: maps the
frontend's granted pages (dom0 to dom0), binds to its event channel, answers requests
until it has answered ``count`` of them, then prints one JSON line of counters.

usage: ring_backend.py FRONT_PORT COUNT REF [REF ...]
"""

import json
import sys

from pyxen import evtchn, gnttab, ring

WAIT = 120.0  # seconds without an event before giving up (a lost wakeup)


def main() -> int:
    front_port, count = int(sys.argv[1]), int(sys.argv[2])
    refs = [int(r) for r in sys.argv[3:]]
    _, lib = ring.native()
    with evtchn.open() as ev, gnttab.open() as gt, \
            gt.map(0, refs, writable=True) as m:
        port = ev.bind_interdomain(0, front_port)
        with ring.BackRing(m, "blkif_request_t", "blkif_response_t",
                           notify=lambda: ev.notify(port)) as back:
            return serve(ev, back, count, lib)


def serve(ev, back, count, lib) -> int:
    """Answer ``count`` requests, sleeping on the channel when the ring is empty."""
    print("READY", flush=True)
    done = events = bad = 0
    while done < count:
        reqs = back.take_requests()
        for r in reqs:
            ok = r.sector_number == r.id * 7 and r.operation == lib.BLKIF_OP_READ
            bad += not ok
            back.put_response({"id": r.id, "operation": r.operation,
                               "status": lib.BLKIF_RSP_OKAY if ok else lib.BLKIF_RSP_ERROR})
        done += len(reqs)
        if reqs:
            back.push_responses()
            continue
        if back.final_check_for_requests():
            continue
        if ev.wait(timeout=WAIT) is None:
            print(json.dumps({"error": f"no event for {WAIT}s after {done} requests"}))
            return 1
        events += 1
    print(json.dumps({"done": done, "bad": bad, "events": events, "pushes": back.pushes,
                      "notifications": back.notifications, "size": back.size}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
