"""Python's cyclic garbage collector run between a batch worker's batches, not inside them.

A consumed batch is tens of thousands of records, each a dozen container objects (the record, its
headers, the decoded event) alive until the batch is done. Under the automatic collector they survive
the young generations, count towards the old one, and trigger full collections that scan them all while
the batch runs: measured in the continuity worker (bench/continuity/bench.py, 20 000 patients), 16-24
full collections of 35-65 ms in a 10-second replay, 11-15 % of the worker's time and most of its latency
tail. Almost none of it is garbage a reference count would not free: the batch's objects form no cycles.

:class:`BatchCollector` switches the automatic collector off for a batch (its fetch, processing and
commit) and collects at the batch's end instead, when the batch's objects are freed: the young
generations once enough objects were allocated since the last collection (the collector's own first
threshold), everything at most every ``full_every_s`` seconds. What other tasks allocate meanwhile (the
API, the metrics) is collected at the next batch's end, so cycles are still freed within one batch.

:func:`freeze_what_lives` is for a process that has started: what lives then (the imported modules,
the app, a simulated population) stays, and a full collection need not scan it again. Measured in the
main job's replay (5 000 people, every Python process): 10-13 % of each service's CPU time was the
collector, most of it full collections of 80-100 ms each over the modules and the app.
"""
from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from typing import Iterator


class BatchCollector:
    def __init__(self, full_every_s: float = 60.0, clock=time.monotonic) -> None:
        self.full_every_s = full_every_s
        self._clock = clock
        self._last_full = clock()
        self.young_collections = 0
        self.full_collections = 0

    @contextmanager
    def batch(self) -> Iterator[None]:
        """The automatic collector off within; the collections due run after (not when it was off already:
        a caller that disabled it owns it)."""
        if not gc.isenabled():
            yield
            return
        gc.disable()
        try:
            yield
        finally:
            gc.enable()
            self.collect_due()

    def collect_due(self) -> None:
        now = self._clock()
        if now - self._last_full >= self.full_every_s:
            gc.collect()
            self._last_full = now
            self.full_collections += 1
        elif gc.get_count()[0] > gc.get_threshold()[0]:
            gc.collect(1)
            self.young_collections += 1

    def collected_fully(self) -> None:
        """A full collection ran elsewhere: the next one is due a full interval later."""
        self._last_full = self._clock()

    def refreeze(self) -> None:
        """Everything collected, the frozen objects included (a cycle among them is freed), and what lives
        frozen again (:func:`freeze_what_lives`): after a refresh replaced what a worker keeps."""
        gc.unfreeze()
        freeze_what_lives()
        self.collected_fully()


def freeze_what_lives() -> None:
    """Collect once, then move every object still alive to the permanent generation (``gc.freeze``): the
    collector's full collections scan only what was made after. Objects frozen are freed by their
    reference count as always; only a cycle among them is never collected (what lives at a start lives
    on)."""
    gc.collect()
    gc.freeze()
