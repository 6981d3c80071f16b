"""Files in and out: camera movies (TIFF), localization tables (CSV, HDF5), exports to ThunderSTORM and
Picasso, and SMAP cubic-spline PSF calibrations; ShareLoc ``.smlm``, SMAP ``_sml.mat`` and DECODE ``.h5``
localization files, and :func:`read_locs`/:func:`write_locs` that pick the format by file name.

Units and coordinates inside plexloc follow ``docs/conventions.md``; every reader and writer here
converts to and from another program's units and origins at the file boundary only. Writers are
atomic (temporary file, then rename); bad input raises :class:`plexloc.errors.InputError` naming
the file.
"""

from plexloc.io.foreign import read_decode_h5, read_smap_sml
from plexloc.io.formats import format_of, read_locs, write_locs
from plexloc.io.picasso import export_picasso, import_picasso, picasso_sidecar_path
from plexloc.io.smap import SplineCalibration, list_smap_channels, load_smap_3dcal, save_smap_3dcal
from plexloc.io.smlm import read_smlm, write_smlm
from plexloc.io.tables import TABLE_SUFFIXES, TableWriter, read_table, write_table
from plexloc.io.thunderstorm import export_thunderstorm, import_thunderstorm
from plexloc.io.tiff import ArrayMovie, MovieReader, MovieWriter, channel_movies, open_movie, read_movie, write_movie

__all__ = [
    "TABLE_SUFFIXES",
    "TableWriter",
    "ArrayMovie",
    "MovieReader",
    "MovieWriter",
    "SplineCalibration",
    "channel_movies",
    "export_picasso",
    "export_thunderstorm",
    "format_of",
    "import_picasso",
    "import_thunderstorm",
    "list_smap_channels",
    "load_smap_3dcal",
    "open_movie",
    "picasso_sidecar_path",
    "read_decode_h5",
    "read_locs",
    "read_movie",
    "read_smap_sml",
    "read_smlm",
    "read_table",
    "save_smap_3dcal",
    "write_locs",
    "write_movie",
    "write_smlm",
    "write_table",
]
