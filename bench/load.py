"""A steady CPU load of a given number of cores, in 10 ms slices on as many
processes as the machine has cores: what a baseline runs beside it to see
how much the same CPU, spent by anything, slows the work measured."""

from __future__ import annotations

import multiprocessing
import os
import time

SLICE = 0.01  # seconds: a busy part, then an idle part, every slice


def _burn(duty: float, stop) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < SLICE * duty:
            pass
        time.sleep(SLICE * (1.0 - duty))


class CpuLoad:
    """`with CpuLoad(0.4):` keeps 0.4 of a core busy in all, spread over
    the cores, until the block ends."""

    def __init__(self, cores: float):
        n = os.cpu_count() or 1
        self.duty = min(1.0, max(0.0, cores / n))
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._procs = [
            ctx.Process(target=_burn, args=(self.duty, self._stop), daemon=True) for _ in range(n)
        ]

    def __enter__(self) -> CpuLoad:
        if self.duty > 0:
            for p in self._procs:
                p.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for p in self._procs:
            if p.pid is not None:
                p.join(5)
