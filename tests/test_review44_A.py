"""Review 44, reviewer A (data in): defects found in this session's changes to plexloc.io, with the fixes' tests."""

from __future__ import annotations

import pytest

from plexloc.errors import InputError
from plexloc.io.tables import read_table


def test_an_undecodable_byte_deep_in_a_csv_is_named_by_its_own_byte_and_line(tmp_path):
    """The decode error's offset counted from the reader's chunk: byte 3901 was named for byte 388925."""
    head = b"frame,x_nm,y_nm,z_nm,photons\n" + b"".join(b"%d,1.5,2.5,0,100\n" % i for i in range(20000))
    bad = head + b"5,1.5,\xe9,0,100\n\x00\n"  # (a NUL byte: no Windows-1252 text either, test_io45)
    path = tmp_path / "locs.csv"
    path.write_bytes(bad)
    with pytest.raises(InputError) as err:
        read_table(path)
    at = bad.index(b"\xe9")
    assert f"(invalid continuation byte at byte {at}, line 20002)" in str(err.value)
    # a UTF-8 mark counts as the file's bytes; a UTF-16 file cut short names its last byte
    path.write_bytes(b"\xef\xbb\xbf" + head[:60] + b"\x81\n")  # (0x81: no Windows-1252 character either)
    with pytest.raises(InputError, match=r"not UTF-8 \(invalid start byte at byte 63, line 3\)"):
        read_table(path)
    text = "frame\tx_nm\ty_nm\tz_nm\tphotons\r\n0\t1.5\t2.5\t0\t100\r\n".encode("utf-16")
    path.write_bytes(text[:-1])
    with pytest.raises(InputError, match=rf"not a UTF-16 text file \(truncated data at byte {len(text) - 2}\)"):
        read_table(path)
