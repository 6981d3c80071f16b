"""Review of the io and split changes of 45: rows of one movie's cut replaced by another's, frames of a multi-table
.smlm shifted by a table without frames, and a 2D table's warning that did not name the z column it left unread."""

from __future__ import annotations

import numpy as np
import tifffile

from plexloc.cli.main import main


def test_split_keeps_the_dots_of_a_movie_name(tmp_path, capsys):
    """Was: the name cut at its first dot, so run.1.tif and run.2.tif both wrote DIR/run_ch0.tif: the second movie's
    cut replaced the first's without a word (and 2024.05.01_cell.tif became 2024_ch0.tif)."""
    sv = tmp_path / "boxes.yaml"
    sv.write_text("split_view:\n  boxes: [[0, 0, 4, 4], [4, 0, 4, 4]]\n")
    out = tmp_path / "cut"
    frames = {}
    for name, n in (("run.1.tif", 6), ("run.2.tif", 4), ("2024.05.01_cell.ome.tif", 5)):
        frames[name] = (np.arange(n * 4 * 8, dtype=np.uint16).reshape(n, 4, 8) + 7 * n)
        tifffile.imwrite(tmp_path / name, frames[name], photometric="minisblack")
        assert main(["split", str(tmp_path / name), "--config", str(sv), "--out", str(out)]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == [
        "2024.05.01_cell_ch0.tif", "2024.05.01_cell_ch1.tif", "run.1_ch0.tif", "run.1_ch1.tif", "run.2_ch0.tif",
        "run.2_ch1.tif"]
    for stem, name in (("run.1", "run.1.tif"), ("run.2", "run.2.tif"), ("2024.05.01_cell", "2024.05.01_cell.ome.tif")):
        np.testing.assert_array_equal(tifffile.imread(out / f"{stem}_ch0.tif"), frames[name][:, :, :4])
        np.testing.assert_array_equal(tifffile.imread(out / f"{stem}_ch1.tif"), frames[name][:, :, 4:])
