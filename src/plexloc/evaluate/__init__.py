"""Evaluation of localizations against ground truth (SMLM Challenge 2016, Sage et al. 2019).

:func:`match` pairs predictions with ground truth frame by frame (minimum-cost assignment within
250 nm laterally and, in 3D, 500 nm axially); :func:`evaluate` turns that into :class:`Metrics`
(Jaccard, recall, precision, RMSEs, efficiencies, biases, colour and gridding scores).
"""

from plexloc.evaluate.matching import Matching, match
from plexloc.evaluate.metrics import Metrics, evaluate, evaluate_matching, gridding_deviation

# crlb: see plexloc.evaluate.crlb (imported lazily by callers)

__all__ = ["Matching", "Metrics", "evaluate", "evaluate_matching", "gridding_deviation", "match"]
