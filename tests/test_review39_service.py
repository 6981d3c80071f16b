"""Review of session 39's service changes: the stale part files of a download whose name holds glob characters."""

from __future__ import annotations

import hashlib
import os
import time

import httpx

from plexloc.service import transfer

DATA = b"plexloc" * 1000
SHA = hashlib.sha256(DATA).hexdigest()


def test_stale_parts_are_removed_for_names_with_brackets(tmp_path):
    """``cells[1].tif`` (brackets are allowed in file names): the glob read '[1]' as a character class, so the
    stale part of an older version of that file was never found and stayed for ever."""
    old = tmp_path / f".cells[1].tif.{'a' * 12}.part"
    old.write_bytes(b"x" * 100)
    os.utime(old, (time.time() - 7200, time.time() - 7200))  # given up two hours ago
    other = tmp_path / f".cells1.tif.{'a' * 12}.part"  # another file's, which the class matched (kept by its length)
    other.write_bytes(b"y")
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=DATA))) as h:
        transfer.download(h, "http://store/f", tmp_path / "cells[1].tif", sha256=SHA)
    assert (tmp_path / "cells[1].tif").read_bytes() == DATA
    assert not old.exists()
    assert other.exists()
