"""Post-processing of localization tables: drift correction, merging of on-events, filtering.

Functions take a :class:`plexloc.table.LocTable` and return a new one (inputs are never changed).
"""

from plexloc.post.drift import DriftResult, apply_drift, comet_available, estimate_drift, rcc_drift
from plexloc.post.filter import FilterReport, filter_localizations
from plexloc.post.merge import MergeReport, link_localizations, merge_localizations

__all__ = [
    "DriftResult",
    "FilterReport",
    "MergeReport",
    "apply_drift",
    "comet_available",
    "estimate_drift",
    "filter_localizations",
    "link_localizations",
    "merge_localizations",
    "rcc_drift",
]
