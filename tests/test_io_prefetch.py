"""Reading ahead in a background thread (plexloc.io.prefetch): order, errors, stopping."""

from __future__ import annotations

import threading
import time

import pytest

from plexloc.io.prefetch import prefetch


def test_items_arrive_in_order_and_all():
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))
    assert list(prefetch([], depth=1)) == []


def test_the_producer_runs_ahead_by_depth_only():
    made = []

    def items():
        for i in range(20):
            made.append(i)
            yield i

    it = prefetch(items(), depth=2)
    assert next(it) == 0
    time.sleep(0.3)
    assert 2 <= len(made) <= 4  # item 0 taken, up to 2 waiting, 1 being put
    it.close()


def test_an_error_is_raised_at_its_item():
    def items():
        yield 1
        yield 2
        raise OSError("corrupt page 3 in movie.tif")

    got = []
    with pytest.raises(OSError, match="movie.tif"):
        for x in prefetch(items()):
            got.append(x)
    assert got == [1, 2]


def test_closing_stops_the_thread_before_returning():
    finished = threading.Event()

    def items():
        try:
            for i in range(10_000):
                yield i
        finally:
            finished.set()

    it = prefetch(items(), depth=2)
    assert next(it) == 0
    before = {t.name for t in threading.enumerate()}
    assert "plexloc-prefetch" in before
    it.close()
    assert finished.is_set()  # the source generator was closed, in the thread, before close() returned
    assert "plexloc-prefetch" not in {t.name for t in threading.enumerate()}
    with pytest.raises(ValueError, match="depth"):
        list(prefetch([1], depth=0))
