"""Shared helpers for pyxen's benchmarks: interleaved timing rounds, table, JSON line."""

from __future__ import annotations

import json
import statistics
import time


def per_op(fn, n: int) -> float:
    """Seconds per call of ``fn(n)`` (which runs the operation n times)."""
    t0 = time.perf_counter()
    fn(n)
    return (time.perf_counter() - t0) / n


class Rounds:
    """Run every (op, impl) measurement ``rounds`` times, interleaved, so a slow spell of
    the (shared, emulated) machine hits all implementations alike; keep the best round."""

    def __init__(self, rounds: int):
        self.rounds = rounds
        self.samples: dict[tuple[str, str], list[float]] = {}

    def add(self, op: str, impl: str, seconds: float) -> None:
        self.samples.setdefault((op, impl), []).append(seconds)

    def best(self, op: str, impl: str) -> float | None:
        s = self.samples.get((op, impl))
        return min(s) if s else None

    def median(self, op: str, impl: str) -> float | None:
        s = self.samples.get((op, impl))
        return statistics.median(s) if s else None


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def result(name: str, ratio: float, goal: float, detail: str) -> dict:
    return {"name": name, "ratio": round(ratio, 3), "goal": goal, "detail": detail}


def print_json(results: list[dict]) -> None:
    print(json.dumps({"results": results}, sort_keys=False))
