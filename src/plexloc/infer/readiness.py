"""Whether a trained model is ready to fit movies, from its own validation at its saved step.

:func:`model_readiness_note` says why a fit may find little or colour poorly: a model not trained enough (validation
JI under :data:`POOR_JI` within its first :data:`POOR_JI_STEPS` steps, :func:`poor_model`), a fit without
localizations, a multi-colour model whose per-channel photons do not yet tell its dyes apart
(:func:`plexloc.train.validation.poor_colors`). ``plexloc fit`` prints it after the fit, ``plexloc process`` and
:func:`plexloc.workflow.process_movies` before the fits (a :class:`ModelNotReadyWarning`, kept in each
acquisition's ``summary.json``), ``plexloc train`` says the same of :func:`poor_model` at the end of a run.

Example:
    >>> poor_model(30.0, 200), poor_model(85.0, 200), poor_model(30.0, 20000)
    (True, False, False)
"""

from __future__ import annotations

import math
import os
from typing import Any

__all__ = ["POOR_JI", "POOR_JI_STEPS", "ModelNotReadyWarning", "model_readiness_note", "poor_model"]

#: below this validation JI (%) ``plexloc train`` and ``plexloc fit`` say that a model is not ready to fit movies,
#: within its first POOR_JI_STEPS steps (a model trained long on dense or dim data may validate below it for good)
POOR_JI = 50.0
POOR_JI_STEPS = 5000


class ModelNotReadyWarning(UserWarning):
    """The model's own validation says it is not ready to fit movies, or to colour them
    (:func:`model_readiness_note`)."""


def poor_model(ji, step) -> bool:
    """Whether a validation JI (%, NaN counts as poor) at ``step`` means a model not trained enough to fit movies."""
    return not (ji is not None and ji >= POOR_JI) and (step is None or step < POOR_JI_STEPS or not ji >= 10.0)


def model_readiness_note(model: str | os.PathLike | dict[str, Any], n_rows: int | None = None) -> str | None:
    """Why a fit by ``model`` may have found little: the model's own validation at its saved step (JI under
    :data:`POOR_JI`, :func:`poor_model`), or, where ``n_rows`` (the localizations the fit found) is 0, no
    localizations at all; for a multi-colour model, colours it assigned poorly on its validation set
    (:func:`plexloc.train.validation.poor_colors`). None when there is nothing to say.

    Args:
        model: a run folder or model file, or its payload as :func:`plexloc.nets.io.read_model_file` reads it.
        n_rows: the fit's localizations; None before a fit (no note about an empty fit).
    """
    from plexloc.train.validation import poor_colors

    if not isinstance(model, dict):
        from plexloc.nets.io import read_model_file

        model = read_model_file(model)
    meta = model.get("meta") or {}
    val = meta.get("validation") or {}
    ji, step = val.get("jaccard"), meta.get("step")
    minutes = meta.get("elapsed_s", math.nan) / 60
    if ji is not None and poor_model(ji, step):
        return (f"the model detected poorly on its own validation set (JI {ji:.1f} % at step {step}, "
                f"{minutes:.1f} min of training): it is not trained enough to fit "
                "movies; train it longer (plexloc train CONFIG --out RUN --resume --minutes M), on a GPU, or a smaller "
                "model on the CPU (the model and training sections of examples/demo_2d.yaml)")
    if n_rows == 0:
        seen = f"the model's validation JI was {ji:.1f} % at step {step}" if ji is not None else "no validation in the model"
        return (f"no localizations ({seen}): check that the movie "
                "shows spots, that the camera (--camera, or the model's) converts its counts to photons as the "
                "movie's camera does, and the detection --threshold")
    colour = poor_colors(val)
    if colour:
        return (f"the model's per-channel photons do not yet tell its dyes apart: {colour} (step {step}, "
                f"{minutes:.1f} min of training); plexloc color will assign these "
                "localizations' colours as poorly: train it longer (plexloc train CONFIG --out RUN --resume --minutes M) "
                "and watch color_accuracy in RUN/log.csv")
    return None
