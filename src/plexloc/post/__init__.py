"""Post-processing of localization tables: drift correction, merging of on-events, filtering, colour
assignment, de-biasing, channel registration and duplicate checks.

Functions take a :class:`plexloc.table.LocTable` and return a new one (inputs are never changed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plexloc._lazy import lazy_names

# the function debias shares its module's name: imported here (a light module), so that the package's ``debias`` is the
# function, as the module's import made it before (a later ``import plexloc.post.debias`` leaves it so)
from plexloc.post.debias import DebiasReport, debias

if TYPE_CHECKING:  # the names as type checkers and editors see them (at run time: __getattr__, on first use)
    from plexloc.post.color import ColorReport, assign_colors, estimate_ratios
    from plexloc.post.drift import DriftResult, apply_drift, comet_available, estimate_drift, rcc_drift
    from plexloc.post.duplicates import DuplicateReport, DuplicateWarning, channel_duplicates
    from plexloc.post.filter import FilterReport, filter_localizations
    from plexloc.post.merge import MergeReport, link_localizations, merge_localizations
    from plexloc.post.registration import Registration, register_channels

#: each name's module: imported on first use (PEP 562), so that ``plexloc merge``, ``filter`` and ``debias`` do not
#: import the registration's calibration code and torch (about 2.9 s a command)
_MODULES = {"ColorReport": "color", "assign_colors": "color", "estimate_ratios": "color",
            "DriftResult": "drift", "apply_drift": "drift", "comet_available": "drift",
            "estimate_drift": "drift", "rcc_drift": "drift", "DuplicateReport": "duplicates",
            "DuplicateWarning": "duplicates", "channel_duplicates": "duplicates", "FilterReport": "filter",
            "filter_localizations": "filter", "MergeReport": "merge", "link_localizations": "merge",
            "merge_localizations": "merge", "Registration": "registration", "register_channels": "registration"}
#: the modules that ``import plexloc.post`` made attributes of the package when it imported its names
_SUBMODULES = ("channels", "color", "drift", "duplicates", "filter", "merge", "registration")

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

__getattr__, __dir__ = lazy_names(__name__, _MODULES, _SUBMODULES)
