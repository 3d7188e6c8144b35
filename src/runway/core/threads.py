"""How many BLAS/OpenMP threads the work runway starts may use.

Unpinned, every process asks OpenMP and BLAS for one thread per core: on a
busy host, HistGradientBoosting's single-row latency grew many times over and
varied as much (the README's serving benchmark: pinned against unpinned), and a
latency gate flipped between pass and fail on the same version. So everything
runway starts runs with a fixed number of threads (``RUNWAY_THREADS`` when
set): processes it spawns get the usual environment variables
(:func:`thread_env`), work in this process runs under threadpoolctl
(:func:`limit`).

Defaults, when ``RUNWAY_THREADS`` is not set: 1 where one request or one row is
scored at a time (serving backends, the latency gate, Spark's Python workers,
of which Spark already runs one per core), the cores shared out where one
process does the heavy lifting (batch scoring in this process: all cores), and
the idle cores where a fit runs (training, a retrain: the cores minus the
1-minute load average, at least 1; sweeps: that / workers per worker). A fit
on a busy host so gets one thread: an HGB fit took 3.5 s on one thread and
125-152 s unpinned on a busy 2-core host (``benchmarks/training_threads.py``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Literal

# The variables OpenMP, OpenBLAS, MKL, Accelerate and numexpr read at start-up.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
Use = Literal["serve", "gate", "batch", "spark", "sweep", "train"]


def cores() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def idle_cores() -> int:
    """Cores no other work is using now: ours minus the 1-minute load average, at least 1."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - not Unix
        return 1
    return max(1, int(cores() - load))


def threads_for(use: Use, configured: int | None, workers: int = 1) -> int:
    """The thread count for ``use``: ``configured`` (``RUNWAY_THREADS``) or the default above."""
    if configured is not None:
        return configured
    if use == "batch":
        return cores()
    if use == "train":
        return idle_cores()
    if use == "sweep":
        return max(1, idle_cores() // max(1, workers))
    return 1


def thread_env(threads: int) -> dict[str, str]:
    """Environment variables pinning a child process to ``threads`` BLAS/OpenMP threads."""
    return dict.fromkeys(THREAD_VARIABLES, str(threads))


@contextlib.contextmanager
def limit(threads: int) -> Iterator[None]:
    """Run the body with BLAS and OpenMP pools of this process limited to ``threads``."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        yield
