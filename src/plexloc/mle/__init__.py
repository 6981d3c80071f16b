"""Classical localization: spot detection and batched maximum-likelihood fits (single- and multi-channel).

- :func:`fit_movie` / :class:`MLEFitter`: movie -> localization table (detection, windows, MLE fits, CRLB);
- :func:`fit_rois`: the batched Levenberg-Marquardt fitter on given windows;
- :func:`detect`, :func:`localize_centroid`: the detection stage and the centroid baseline;
- :func:`refine_frames`: another localizer's table refined by maximum likelihood, its neighbours modelled.
"""

from plexloc.mle.detection import Candidates, detect, localize_centroid
from plexloc.mle.fit import FitChannel, FitResult, fit_rois
from plexloc.mle.pipeline import MLEFitter, ZRangeWarning, fit_movie, fit_movie_to_file
from plexloc.mle.refine import refine_frames

__all__ = ["Candidates", "FitChannel", "FitResult", "MLEFitter", "detect", "fit_movie", "fit_movie_to_file", "fit_rois", "localize_centroid", "refine_frames",
           "ZRangeWarning"]
