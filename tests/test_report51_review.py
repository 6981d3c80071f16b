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
