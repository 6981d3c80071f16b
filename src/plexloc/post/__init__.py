"""Post-processing of localization tables: drift correction, merging of on-events, filtering, colour
assignment, de-biasing, channel registration and duplicate checks.

Functions take a :class:`plexloc.table.LocTable` and return a new one (inputs are never changed).
"""

from plexloc.post.color import ColorReport, assign_colors, estimate_ratios
from plexloc.post.debias import DebiasReport, debias
from plexloc.post.drift import DriftResult, apply_drift, comet_available, estimate_drift, rcc_drift
from plexloc.post.duplicates import DuplicateReport, DuplicateWarning, channel_duplicates
from plexloc.post.filter import FilterReport, filter_localizations
from plexloc.post.merge import MergeReport, link_localizations, merge_localizations
from plexloc.post.registration import Registration, register_channels

__all__ = [
    "ColorReport",
    "DebiasReport",
    "DuplicateReport",
    "DuplicateWarning",
    "Registration",
    "assign_colors",
    "channel_duplicates",
    "debias",
    "estimate_ratios",
    "register_channels",
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
