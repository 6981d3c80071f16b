"""The SMLM Challenge 2016's CSV tables (Sage et al. 2019): read by :mod:`plexloc.io.foreign` (where the reader
lives, so that :func:`plexloc.io.formats.read_locs` and every command that reads a table read them), named here too.

The challenge's ground truth (``activations.csv``) and the localization files scored against it share one column
order: an index, the frame (numbered from 1), x, y, z (nm) and the intensity (photons). :func:`challenge_layout`
tells such a file from a plexloc CSV (which has ``x_nm``), :func:`read_challenge_csv` reads it as a
:class:`~plexloc.table.LocTable` (frames from 0, as everywhere in plexloc: ``frame - 1``).
"""

from plexloc.io.foreign import CHALLENGE_COLUMNS, challenge_layout, read_challenge_csv

__all__ = ["CHALLENGE_COLUMNS", "challenge_layout", "read_challenge_csv"]
