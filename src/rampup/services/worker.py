"""Periodic background jobs with a clear start and stop, apart from the web server.

Each job runs on its own thread, so a slow one (a webhook that takes its full timeout) never delays another (the
controller's tick). A job that fails is logged under its name and tried again at its next interval: a database
that is briefly away must not stop the loop, and the log must say which job it hit.
"""

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Job", "JobStats", "Observer", "Worker"]

log = logging.getLogger("rampup")


@dataclass(frozen=True)
class Job:
    name: str
    every_s: float
    run: Callable[[], object]


@dataclass
class JobStats:
    """What a job did last, for the server's metrics."""

    runs: int = 0
    failures: int = 0
    last_duration_s: float = 0.0


Observer = Callable[[str, float, bool], None]  # (job, seconds it took, whether it succeeded)


class Worker:
    """`start()` runs every job at once and then every `every_s` seconds until `stop()`."""

    def __init__(self, jobs: Sequence[Job], observers: Sequence[Observer] = ()) -> None:
        names = [job.name for job in jobs]
        if len(names) != len(set(names)):
            raise ValueError(f"job names must be unique: {names}")
        self.jobs = {job.name: job for job in jobs}
        self.stats = {name: JobStats() for name in names}
        self.observers = list(observers)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("the worker is already running")
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._loop, args=(job,), name=f"rampup-{job.name}", daemon=True)
            for job in self.jobs.values()
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask every job to stop and wait for those running to finish (a job stuck longer is abandoned: its
        thread is a daemon, and the lease it may hold runs out by itself)."""
        self._stopping.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def run(self, name: str) -> bool:
        """Run one job now, on the caller's thread; False when it failed (and was logged)."""
        job = self.jobs[name]
        started = time.perf_counter()
        try:
            job.run()
        except Exception:  # any failure of one job is logged and that job tried again at its next interval
            log.exception("background job %r failed", name)
            ok = False
        else:
            ok = True
        elapsed = time.perf_counter() - started
        with self._lock:
            stats = self.stats[name]
            stats.runs += 1
            stats.failures += not ok
            stats.last_duration_s = elapsed
        for observe in self.observers:
            observe(name, elapsed, ok)
        return ok

    def _loop(self, job: Job) -> None:
        while not self._stopping.is_set():
            self.run(job.name)
            if self._stopping.wait(job.every_s):
                return
