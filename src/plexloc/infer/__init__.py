"""Inference: temporal windows, tiling, extraction of localizations, fitting whole movies."""

from plexloc.infer.extract import Extracted, candidates, extract
from plexloc.infer.fit import FrameSample, fit_movie, fit_movie_to_file, to_table
from plexloc.infer.predict import Predictor, iter_frame_blocks, iter_windows, sliding_windows, tiles
from plexloc.infer.readiness import ModelNotReadyWarning, model_readiness_note

__all__ = ["Extracted", "FrameSample", "ModelNotReadyWarning", "Predictor", "candidates", "extract", "fit_movie",
           "fit_movie_to_file", "iter_frame_blocks", "iter_windows", "model_readiness_note", "sliding_windows", "tiles",
           "to_table"]
