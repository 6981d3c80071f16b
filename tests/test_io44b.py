"""CSV decimal marks (helper csvfast, 44)."""

from __future__ import annotations

import pytest

from plexloc.errors import InputError
from plexloc.io.tables import read_csv

HEADER = ["frame", "x_nm", "y_nm", "z_nm", "photons", "sigma_x_nm"]


def _write(path, rows, *, sep="\t", encoding="utf-8", newline="\n"):
    path.write_bytes((newline.join([sep.join(HEADER)] + [sep.join(r) for r in rows]) + newline).encode(encoding))
    return path


@pytest.mark.parametrize("sep", [";", "\t"])
def test_mixed_decimal_marks_on_one_line_are_named_in_file_order(tmp_path, sep):
    """Was: the two columns sorted by name ('photons' before 'x_nm'), not as they stand on the line."""
    p = _write(tmp_path / "t.csv", [["0", "1.5", "2", "3", "4,5", "1"]], sep=sep)
    with pytest.raises(InputError, match=r"t\.csv: line 2, column 'x_nm' holds '1\.5' and line 2, column 'photons' "
                                         r"holds '4,5': decimal commas and decimal points in one file"):
        read_csv(p)
    p = _write(tmp_path / "t.csv", [["0", "2", "1,5", "3", "4.5", "1"]], sep=sep)
    with pytest.raises(InputError, match=r"line 2, column 'y_nm' holds '1,5' and line 2, column 'photons' holds "
                                         r"'4\.5'"):
        read_csv(p)
