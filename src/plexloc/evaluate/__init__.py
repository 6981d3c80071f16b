"""Evaluation of localizations against ground truth (SMLM Challenge 2016, Sage et al. 2019).

:func:`match` pairs predictions with ground truth frame by frame (minimum-cost assignment within
250 nm laterally and, in 3D, 500 nm axially); :func:`evaluate` turns that into :class:`Metrics`
(Jaccard, recall, precision, RMSEs, efficiencies, biases, colour and gridding scores). Tables are
:class:`~plexloc.table.LocTable` s (or dicts / pandas DataFrames of their columns); distances nm, scores percent.

The Cramér-Rao bound and RMSE/CRLB: :func:`plexloc.evaluate.crlb.crlb` (a PSF and camera model, photons and
background; float64 tensors), :func:`plexloc.evaluate.uncertainty.table_crlb` (every row of a truth table; numpy) and
:func:`plexloc.evaluate.uncertainty.error_scores` (``crlb_ratio_lat/ax`` = RMSE / CRLB of a matching, and the
z-scores of the predicted sigmas). Not imported here: they need torch, this package does not.

Checks of what the scores alone do not say (``plexloc evaluate`` prints them): :mod:`plexloc.evaluate.frames` (tables
numbered a frame apart, frames one table has and the other lacks), :mod:`plexloc.evaluate.alignment` (predictions
offset from the truth, x and y exchanged, z of the other sign); :mod:`plexloc.evaluate.challenge` reads the SMLM
Challenge's CSV tables.
"""

from plexloc.evaluate.matching import Matching, match
from plexloc.evaluate.metrics import Metrics, evaluate, evaluate_matching, gridding_deviation

# crlb: see plexloc.evaluate.crlb (imported lazily by callers)

__all__ = ["Matching", "Metrics", "evaluate", "evaluate_matching", "gridding_deviation", "match"]
