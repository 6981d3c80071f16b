"""plexloc: single-molecule localization microscopy with simulation-trained deep learning.

Units and coordinates follow ``docs/conventions.md``: positions in nm, ``x`` along columns,
``y`` along rows, origin at the outer corner of pixel (0, 0), frames numbered from 0.

The top-level import is light: it pulls in neither matplotlib nor any service dependency.
"""

from plexloc.errors import InputError, PlexlocError
from plexloc.table import LocTable

__version__ = "0.1.0"
__all__ = ["InputError", "LocTable", "PlexlocError", "__version__"]
