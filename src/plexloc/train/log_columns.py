"""What each column of a run's ``log.csv`` means (one row per validation; ``plexloc columns RUN/log.csv`` prints
this with each column's range). Units in brackets; "validation" means the run's fixed simulated validation set,
scored with the project's own metrics (conventions.md) at the model's detection threshold. The validation columns
score the network that ``model.pt`` saves: the moving average of the weights (``training.ema_steps``; the last
step's weights where it is 0), while the training-loss columns are the trained weights' own."""

from __future__ import annotations

import re

#: column -> (unit, meaning); ``_x`` / ``_N`` families are matched by :func:`log_column_doc`
LOG_COLUMN_DOCS: dict[str, tuple[str, str]] = {
    "step": ("", "optimizer steps so far (one batch each)"),
    "elapsed_s": ("s", "training time so far (validation excluded), over all resumed calls"),
    "lr": ("", "learning rate at this step"),
    "samples_per_s": ("1/s", "training samples per second since the previous row (simulation included)"),
    "loss": ("", "training loss (count + localization + background), mean since the previous row over the "
                     "batches that trained (skipped_steps: those left out)"),
    "loss_count": ("", "training loss: the count term (Gaussian approximation of the emitter count per sample)"),
    "loss_loc": ("", "training loss: the localization term (Gaussian-mixture likelihood of the true emitters)"),
    "loss_bg": ("", "training loss: the background term (squared error per pixel)"),
    "val_loss": ("", "the same loss on the validation set (model.pt is the step where it was lowest)"),
    "val_loss_count": ("", "validation loss: the count term"),
    "val_loss_loc": ("", "validation loss: the localization term"),
    "val_loss_bg": ("", "validation loss: the background term"),
    "jaccard": ("%", "validation JI: TP / (TP + FP + FN), matched within 250 nm laterally (500 nm axially in 3D)"),
    "recall": ("%", "validation recall: TP / (TP + FN)"),
    "precision": ("%", "validation precision: TP / (TP + FP)"),
    "rmse_lat": ("nm", "validation lateral RMSE of the matched pairs"),
    "rmse_ax": ("nm", "validation axial RMSE of the matched pairs (3D)"),
    "eff_lat": ("%", "validation lateral efficiency: 100 - sqrt((100 - JI)^2 + (1/nm RMSE_lat)^2)"),
    "eff_ax": ("%", "validation axial efficiency: 100 - sqrt((100 - JI)^2 + (0.5/nm RMSE_ax)^2)"),
    "eff_3d": ("%", "validation 3D efficiency: the mean of eff_lat and eff_ax"),
    "crlb_ratio_lat": ("", "validation lateral RMSE / sqrt(mean CRLB^2) of the matched emitters (1: the bound)"),
    "crlb_ratio_ax": ("", "validation axial RMSE / sqrt(mean CRLB_z^2)"),
    "zscore_std": ("", "standard deviation of error / predicted sigma along this axis (1: calibrated uncertainties)"),
    "zscore_rsd": ("", "the same spread measured robustly (1.4826 x median absolute deviation)"),
    "sigma_cal": ("", "factor plexloc fit multiplies this axis's predicted sigma by (robust spread of the isolated "
                      "emitters' z-scores)"),
    "offset_cal": ("nm", "constant error of this axis plexloc fit subtracts (median error where significant, else 0)"),
    "extraction_spread_px": ("px", "the extraction's neighbourhood spread radius the sigma factors were measured with "
                                   "(0: the sigmas without it; plexloc fit extracts as the factors were measured)"),
    "photon_cal": ("", "photon scale plexloc fit divides the photons and their sigma by (median predicted / true photons "
                       "where significant, else 1; empty for per-channel photons)"),
    "photon_sigma_cal": ("", "factor plexloc fit multiplies sigma_photons by (robust spread of the isolated emitters' "
                             "photon z-scores after the photon scale; empty for per-channel photons)"),
    "channel_use": ("", "how much the outputs depend on channel N's image, relative to the most used channel "
                        "(near 0: the channel is ignored)"),
    "skipped_steps": ("", "batches so far whose loss or gradient was not finite (their update was zero)"),
    "segment": ("", "optimizer segment: 0 for a run trained from scratch, +1 at each --init-from (a fresh optimizer "
                    "on another run's weights; rows of the source run keep theirs)"),
    # multi-colour (ratiometric) configurations: the validation set's colour part, simulated with the dyes
    "color_jaccard": ("%", "JI of the validation's colour part (samples of the configuration's own dyes, ratios and "
                           "on-times; the training photons are independent per channel)"),
    "color_accuracy": ("%", "colour part: matched localizations given their true colour (plexloc color's eq. 3 with "
                            "the configuration's ratios, threshold 0.9) / matched localizations"),
    "color_rejection": ("%", "colour part: matched localizations whose colour was rejected (probability below 0.9) / "
                             "matched localizations"),
    "color_fraction_rmse": ("", "colour part: RMSE of the predicted fraction of photons in channel 0 (the dyes are "
                                "told apart by theirs) over the matched localizations"),
    "color_recall": ("%", "colour part: share of this dye's emitters that were detected (matched)"),
    "photon_zscore_std": ("", "colour part: standard deviation of (predicted - true photons) / predicted sigma in this "
                              "channel, matched localizations (1: calibrated; colour assignment weighs by these sigmas)"),
}

_FAMILY = re.compile(r"^(zscore_std|zscore_rsd|sigma_cal|offset_cal|channel_use|photon_zscore_std|color_recall)_(\w+)$")


def log_column_doc(name: str) -> tuple[str, str] | None:
    """``(unit, meaning)`` of a ``log.csv`` column (``zscore_std_x``, ``channel_use_1``, ``photon_zscore_std_ch0`` by
    their family), else None."""
    if name in LOG_COLUMN_DOCS:
        return LOG_COLUMN_DOCS[name]
    m = _FAMILY.match(name)
    if m and m.group(1) in LOG_COLUMN_DOCS:
        unit, text = LOG_COLUMN_DOCS[m.group(1)]
        if m.group(1) == "channel_use":
            what = f"channel {m.group(2)}"
        elif m.group(1) == "photon_zscore_std":
            ch = re.fullmatch(r"ch(\d+)", m.group(2))
            if ch is None:
                return None
            what = f"channel {ch.group(1)}"
        elif m.group(1) == "color_recall":
            if not m.group(2).isdigit():
                return None
            what = f"dye {m.group(2)}, row {m.group(2)} of photon_model.ratios"
        else:
            what = f"axis {m.group(2)}"
        return unit, f"{text} ({what})"
    return None


def is_training_log(names: list[str]) -> bool:
    """Whether CSV header ``names`` are a run's ``log.csv`` (a step and a validation loss)."""
    return "step" in names and "val_loss" in names
