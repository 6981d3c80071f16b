"""Review of session 50's multi-channel change (helper "multi"): the words of the split-view alignment messages and
the register transform's uncertainty."""

import re

import numpy as np
import pytest
from test_multi50 import PX, _split_view_movie, chip_T


def test_unequal_boxes_are_named_with_their_width_and_height():
    """The error printed an unlabeled [(62, 64), (64, 64)]: which box, and which number is the width?"""
    from pydantic import ValidationError

    from plexloc.config.models import SplitViewConfig

    with pytest.raises(ValidationError) as e:
        SplitViewConfig(boxes=[(0, 0, 62, 64), (64, 0, 64, 64)], flip=["none", "x"])
    msg = str(e.value)
    assert "all channel boxes must have the same width and height" in msg
    assert "boxes[0] [0, 0, 62, 64]: 62 x 64 px; boxes[1] [64, 0, 64, 64]: 64 x 64 px" in msg
    assert "(62, 64)" not in msg and "give every box the same width and height" in msg


def _check(transform, flip, listed_right, seed=0):
    from plexloc.calibrate.alignment import check_channel_alignment
    from plexloc.config.models import SplitViewConfig
    from plexloc.io.splitview import split_frames

    raw, true = _split_view_movie(transform, flip, seed=seed)
    split = true if listed_right else SplitViewConfig(boxes=[(32, 0, 32, 32), (0, 0, 32, 32)], flip=[flip, "none"])
    cut = split_frames(raw, split)
    return check_channel_alignment([cut[:, 0], cut[:, 1]], [np.eye(3), transform], PX, split=split, warn=False)


@pytest.mark.parametrize(("flip", "words"), [
    ("x", "channels 0 and 1 in each other's place (their split_view boxes swapped together with their flips, or the "
          "boxes alone)"),
    ("none", "channels 0 and 1 in each other's place; the transforms")])
def test_the_undecided_order_note_is_in_plain_words(flip, words):
    """A right split view with a 47 nm transform: its order is not decided by geometry. The note said "swap0-1,
    swap0-1/flips lines up as well as the configured order" (internal names, a verb for one)."""
    rep = _check(chip_T(0.0, 1.0, (40.0, 25.0)), flip, listed_right=True)
    assert rep.status == "ok" and not rep.findings
    (note,) = [n for n in rep.notes if "channel order not decided" in n]
    assert "the configured order lines up no better than " + words in note
    assert not re.search(r"swap\d", note) and "/flips" not in note
    summary = rep.summary()  # plexloc fit prints it: "best alternative swap0-1/flips" before
    assert "best alternative: channels 0 and 1 in each other's place" in summary
    assert not re.search(r"swap\d|flip\d", summary) and "/flips" not in summary


def test_the_reversed_transform_is_named_once():
    """Channel 1's half mirrored, listed the other way round, a 1 degree transform (the reversed transform 2 px off):
    the fix named the reversed transform twice, word for word."""
    rep = _check(chip_T(1.0, 1.0, (100.0, 50.0)), "x", listed_right=False)
    (text,) = rep.findings
    assert "swap the split_view section's boxes of channels 0 and 1 together with their flips" in text
    assert text.count("channels.1.transform given in the reverse direction") == 1
    assert "each box keeps its own mirroring" in text and "half of the camera" not in text


def test_the_transform_uncertainty_holds_for_correlated_unequal_axes_and_any_origin():
    """Checks of the reviewed formula (no change): var_x + var_y of the mapped corner needs only the pooled residual
    scatter, whatever the axes' noise and their correlation (x 30 nm, y 6 nm, correlation 0.8), and it does not depend
    on where the coordinates start (the ROI's or the chip's corner)."""
    from plexloc.post.registration import transform_uncertainty

    rng = np.random.default_rng(3)
    src = rng.uniform(0, 6400.0, (40, 2))
    cov = np.array([[30.0**2, 0.8 * 30 * 6], [0.8 * 30 * 6, 6.0**2]])
    chol = np.linalg.cholesky(cov)
    extent = np.array([src.min(axis=0), src.max(axis=0)])
    corners = np.array([[x, y, 1.0] for x in extent[:, 0] for y in extent[:, 1]])
    A = np.column_stack([src, np.ones(len(src))])
    mapped, predicted = [], []
    for _ in range(500):
        dst = src + rng.normal(size=src.shape) @ chol.T
        coef, *_ = np.linalg.lstsq(A, dst, rcond=None)
        mapped.append(corners @ coef)
        predicted.append(transform_uncertainty(src, np.hypot(*(A @ coef - dst).T), extent))
    actual = float(np.sqrt(np.var(np.array(mapped), axis=0).sum(axis=-1)).max())  # the worst corner
    assert 0.9 * actual < np.median(predicted) < 1.1 * actual
    o = np.array([30000.0, 20000.0])  # chip pixel (300, 200) at 100 nm
    res = rng.normal(size=len(src)) * 20.0
    assert transform_uncertainty(src + o, res, extent + o) == pytest.approx(transform_uncertainty(src, res, extent),
                                                                             rel=1e-9)
