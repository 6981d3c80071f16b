"""Downloads: a ranged reply from the wrong offset, and part files of earlier versions of a file (session 39)."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from plexloc.service import transfer

DATA = bytes(range(256)) * 4096 * 2  # 2 MiB
SHA = hashlib.sha256(DATA).hexdigest()


class _Store:
    """A store whose first reply is cut after ``cut`` bytes; ranged requests are answered 206 from ``wrong_start``
    (a proxy or store that ignores the asked offset yet says 206) or, when it is None, from the asked byte."""

    def __init__(self, cut: int | None, wrong_start: int | None):
        self.cut, self.wrong_start, self.ranges = cut, wrong_start, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        rng = request.headers.get("range")
        self.ranges.append(rng)
        if rng is None:
            cut, self.cut = self.cut, None
            if cut is None:
                return httpx.Response(200, content=DATA)

            def stream():
                yield DATA[:cut]
                raise httpx.ReadError("connection reset by peer")

            return httpx.Response(200, content=stream())
        asked = int(rng.split("=")[1].rstrip("-"))
        start = asked if self.wrong_start is None else self.wrong_start
        return httpx.Response(206, content=DATA[start:],
                              headers={"Content-Range": f"bytes {start}-{len(DATA) - 1}/{len(DATA)}"})


@pytest.mark.parametrize("sha256", [SHA, None], ids=["checksum", "no-checksum"])
def test_a_ranged_reply_from_another_offset_is_not_appended(tmp_path, sha256):
    """A reply 206 whose Content-Range starts elsewhere than the byte asked for was appended at the part's end: the
    file came out corrupted (1 MiB too long here), silently without a checksum and as a checksum error with one. Now
    the part is dropped and the next try asks for the whole file, which arrives intact."""
    store = _Store(cut=2**20, wrong_start=0)
    with httpx.Client(transport=httpx.MockTransport(store)) as h:
        out = transfer.download(h, "http://store/f", tmp_path / "locs.csv", sha256=sha256, retries=2)
    assert out.read_bytes() == DATA
    assert store.ranges == [None, f"bytes={2**20}-", None]
    assert [p.name for p in tmp_path.iterdir()] == ["locs.csv"]


def test_a_ranged_reply_from_the_asked_offset_is_still_resumed(tmp_path):
    store = _Store(cut=2**20, wrong_start=None)
    with httpx.Client(transport=httpx.MockTransport(store)) as h:
        assert transfer.download(h, "http://store/f", tmp_path / "a.bin", sha256=SHA, retries=1).read_bytes() == DATA
    assert store.ranges == [None, f"bytes={2**20}-"]


def test_part_files_of_other_versions_of_the_file_are_removed(tmp_path):
    """A download given up keeps its part file to resume later; a later download of another version of the same file
    (another checksum) could never resume it, and the part stayed for ever. Now it is removed; another file's part
    and a part of a name that only starts alike are kept."""
    old = tmp_path / f".locs.csv.{'a' * 12}.part"
    old.write_bytes(b"x" * 1000)
    other = tmp_path / f".b.csv.{'a' * 12}.part"
    other.write_bytes(b"y")
    alike = tmp_path / f".locs.csv.{'a' * 12}.part.keep"
    alike.write_bytes(b"z")
    with httpx.Client(transport=httpx.MockTransport(_Store(cut=None, wrong_start=None))) as h:
        transfer.download(h, "http://store/f", tmp_path / "locs.csv", sha256=SHA)
    assert not old.exists()
    assert other.exists() and alike.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["locs.csv", other.name, alike.name])
