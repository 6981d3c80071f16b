"""Reading ahead: a movie's next chunks are read and converted by a background thread while the current
one is fitted, so that the disk and the camera conversion do not leave the GPU waiting.

Reading (memory-mapped TIFF pages, or tifffile's decoders), numpy's casts and torch's element-wise
operations release the GIL, so the thread runs beside the fitting on another core.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """The items of ``items``, produced up to ``depth`` ahead by a background thread, in order.

    An exception raised while producing an item is raised here, at that item. Closing the returned
    generator (or leaving a ``for`` loop over it by an exception, once it is closed) stops the thread after the
    item it is producing and waits for it, so the caller can then close the files the items come from.
    """
    if depth < 1:
        raise ValueError(f"prefetch depth must be >= 1, got {depth!r}")
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    source = iter(items)

    def work() -> None:
        try:
            for item in source:
                if not put((True, item)):
                    return
            put((True, _DONE))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((False, exc))
        finally:  # a generator's own clean-up runs here, in its thread
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name="plexloc-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item  # type: ignore[misc]
            if item is _DONE:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
