"""Inference: temporal windows, tiling, extraction of localizations, fitting whole movies."""

from plexloc.infer.extract import Extracted, candidates, extract
from plexloc.infer.fit import fit_movie, to_table
from plexloc.infer.predict import Predictor, iter_frame_blocks, iter_windows, sliding_windows, tiles

__all__ = ["Extracted", "Predictor", "candidates", "extract", "fit_movie", "iter_frame_blocks", "iter_windows",
           "sliding_windows", "tiles", "to_table"]
