"""Review of session 51's channel-share histogram: a row with NaN photons in one channel has photons in the others; it
was said to have 'no photons in any channel'."""

from __future__ import annotations

import numpy as np

from test_report51 import _with
from test_reportwalk47 import _mle_table

from plexloc.render.report import build_report


def test_rows_left_out_of_the_channel_share_are_said_as_they_are():
    t = _mle_table(n=120, n_frames=12)
    rng = np.random.default_rng(1)
    ch0, ch1 = rng.uniform(100, 1000, len(t)), rng.uniform(100, 1000, len(t))
    ch1[:7] = np.nan
    html = build_report(_with(t, photons_ch0=ch0, photons_ch1=ch1), px_size_nm=20.0).html
    assert 'alt="channel 0 share histogram"' in html
    assert "7 rows left out: a channel&#x27;s photons not finite, or no photons in all channels together" in html
    assert "without photons in any channel" not in html


def test_a_merged_tables_z_image_counts_the_held_rows_at_the_ends(tmp_path, capsys):
    """A merged row holds its rows' at_bound bits and the mean of their z: only those all of whose rows were held sit
    at the ends of the z scale (358 of 431 of a 3D fit's merged rows). The report's image caption and plexloc render
    --color-by z said all 431 were drawn in the end colours."""
    from plexloc.cli.main import main
    from plexloc.io.tables import write_table

    t = _mle_table(n=120, n_frames=12)
    n = len(t)
    held = t["at_bound"] == 2
    off = held & (np.cumsum(held) % 3 == 0)  # a third of the held rows: a mean off the bound
    m = _with(t, z_nm=np.where(off, 250.0, t["z_nm"]), n_merged=np.full(n, 2), frame_last=t["frame"] + 1)
    on_z, at_end = int(held.sum()), int(np.sum(held & ~off))
    assert 0 < at_end < on_z
    rep = build_report(m, px_size_nm=20.0)
    assert (f"{on_z} rows hold a localization with z held on the fit&#x27;s bound (at_bound &amp; 2), {at_end} of them "
            "at the ends, in the end colours</p>") in rep.html
    write_table(m, tmp_path / "merged.csv")
    assert main(["render", str(tmp_path / "merged.csv"), "--out", str(tmp_path / "r.png"), "--color-by", "z",
                 "--pixel-size", "20"]) == 0
    err = capsys.readouterr().err
    assert f"note: {on_z} of {n} localizations ({100 * on_z / n:.1f} %) hold a localization whose z" in err, err
    assert f"rows' mean): {at_end} of them at the ends, drawn in the colours of the z range's ends" in err, err
