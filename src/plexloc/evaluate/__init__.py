"""Evaluation of localizations against ground truth (SMLM Challenge 2016, Sage et al. 2019).

:func:`match` pairs predictions with ground truth frame by frame (minimum-cost assignment within
250 nm laterally and, in 3D, 500 nm axially); :func:`evaluate` turns that into :class:`Metrics`
(Jaccard, recall, precision, RMSEs, efficiencies, biases, colour and gridding scores), in 2D or 3D as
``plexloc evaluate`` picks where ``dim`` is not given (3D where the truth's z varies and the predictions have a z). Tables are
:class:`~plexloc.table.LocTable` s (or dicts / pandas DataFrames of their columns); distances nm, scores percent.

The Cramér-Rao bound and RMSE/CRLB: :func:`plexloc.evaluate.crlb.crlb` (a PSF and camera model, photons and
background; float64 tensors), :func:`plexloc.evaluate.uncertainty.table_crlb` (every row of a truth table; numpy) and
:func:`plexloc.evaluate.uncertainty.error_scores` (``crlb_ratio_lat/ax`` = RMSE / CRLB of a matching, and the
z-scores of the predicted sigmas). Not imported here: they need torch, this package does not.

:func:`evaluate` also checks what the scores alone do not say and warns (:class:`EvaluationWarning`, kept in
``Metrics.warnings``; ``checks=False`` for none), as ``plexloc evaluate`` prints them, from one implementation
(:mod:`plexloc.evaluate.checks`): tables numbered a frame apart or with frames one has and the other lacks
(:mod:`plexloc.evaluate.frames`), predictions offset from the truth, with x and y exchanged, mirrored or with z of
the other sign (:mod:`plexloc.evaluate.alignment`), in pixels or um, without z, merged, with colours numbered in
another order, carrying a simulated drift, or given in the wrong order. ``Metrics.matching`` holds the pairs the
scores come from and :func:`frame_scores` the scores of every frame. The SMLM Challenge's CSV tables are read by
:func:`plexloc.io.read_locs` (:mod:`plexloc.io.foreign`; :mod:`plexloc.evaluate.challenge` names them too).
"""

from plexloc.evaluate.checks import EvaluationWarning
from plexloc.evaluate.matching import Matching, match
from plexloc.evaluate.metrics import Metrics, evaluate, evaluate_matching, frame_scores, gridding_deviation

# crlb: see plexloc.evaluate.crlb (imported lazily by callers)

__all__ = ["EvaluationWarning", "Matching", "Metrics", "evaluate", "evaluate_matching", "frame_scores",
           "gridding_deviation", "match"]
