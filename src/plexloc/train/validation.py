"""A fixed simulated validation set, scored with the project's own metrics.

The set is drawn once from the simulator with its own seed (so every validation of a run, and a
resumed run, scores the same samples). Besides JI, RMSE and efficiency it reports how close the
errors come to the Cramér-Rao bound of the matched emitters (``crlb_ratio_*`` = RMSE / sqrt(mean
CRLB^2)) and whether the predicted uncertainties are calibrated (``zscore_std_*`` = standard deviation
of error / predicted sigma; 1 is calibrated) and, for the isolated emitters alone, the factors that would
calibrate the sigmas (``sigma_cal_*``), which the model file keeps for ``plexloc fit``.

A multi-colour model (a ``ratiometric`` configuration with two or more dyes) trains on independent photons per
channel (conventions.md), so the detection scores above say nothing of its colours. Its validation set gets a
colour part (:class:`ColorSet`): samples simulated with the configuration's own ratiometric photon model (its
dyes, ratios, colour fractions and on-times), fitted by the network, matched to the truth and assigned colours
as ``plexloc color`` does (:func:`plexloc.post.color.assign_colors`, DECODE-Plex eq. 3, threshold
:data:`COLOR_THRESHOLD`): ``color_accuracy`` and ``color_rejection`` (conventions.md), the set's own JI, and
how well the per-channel photons are measured (:func:`color_scores`).
"""

from __future__ import annotations

import contextlib
import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from plexloc.evaluate.matching import match
from plexloc.evaluate.metrics import evaluate_matching
from plexloc.evaluate.uncertainty import (
    error_scores,
    offset_calibration,
    photon_calibration,
    sigma_calibration,
    table_crlb,
)
from plexloc.infer.extract import SPREAD_RADIUS_PX, extract
from plexloc.infer.fit import count_z_edge, model_z_range, to_table
from plexloc.infer.predict import cpu_bf16_supported
from plexloc.nets.localizer import Localizer
from plexloc.post.color import assign_colors
from plexloc.simulation.generator import Batch, BatchGenerator
from plexloc.simulation.geometry import transform_indicator
from plexloc.simulation.simulator import Simulator
from plexloc.table import LocTable
from plexloc.train.loss import decode_loss


def batch_photons(sim: Simulator, frames: torch.Tensor, map_offset_px: torch.Tensor | None = None) -> torch.Tensor:
    """Raw batch frames (B, T, C, H, W) ADU -> photons, each channel through its own camera; ``map_offset_px``
    (B, C, 2): the batch's cuts of sCMOS maps larger than the frame (:attr:`Batch.map_offset_px`), through which
    the frames were simulated and so convert back. They are a :class:`BatchGenerator`'s, drawn inside the maps: not
    checked again (a check is a host-device synchronisation per step, :meth:`plexloc.camera.models.SCMOS.cut_maps`)."""
    off = None if map_offset_px is None else map_offset_px.transpose(0, 1)
    return sim.to_photons(frames.permute(2, 0, 1, 3, 4), map_offset_px=off, offsets_inside=True).permute(1, 2, 0, 3, 4)


def batch_aux(sim: Simulator, batch: Batch, spec) -> torch.Tensor | None:
    """The network's auxiliary input of a batch: the transformation indicator (multi-channel models)."""
    if not spec.n_aux:
        return None
    return transform_indicator([ch.transform for ch in sim.channels], batch.roi_offset_px, sim.frame_shape, sim.px_size_nm)


def amp_context(amp: bool, device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on ``device`` where ``amp`` asks for it and the device runs bfloat16 natively (any CUDA
    device the trainer uses, a CPU with AVX512-BF16: :func:`~plexloc.infer.predict.cpu_bf16_supported`), else none."""
    if amp and (device.type == "cuda" or (device.type == "cpu" and cpu_bf16_supported())):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def draw_batches(sim: Simulator, *, n_samples: int, batch_size: int, window: int, min_target_photons: float, seed: int,
                 margin_px: float = 0.0) -> list[Batch]:
    """``n_samples`` samples of ``sim`` from the stream of ``seed``, in batches of at most ``batch_size``."""
    gen = BatchGenerator(sim, batch_size=batch_size, window=window, min_target_photons=min_target_photons, seed=seed,
                         margin_px=margin_px)
    batches = []
    left = n_samples
    while left > 0:
        gen.batch_size = min(batch_size, left)
        batches.append(gen())
        left -= gen.batch_size
    return batches


def truth_of(batches: list[Batch], *, per_channel: bool = False) -> tuple[LocTable, np.ndarray]:
    """Truth table (frame = sample index over all batches) and the per-target bg of channel 0; ``per_channel``
    adds each target's photons per channel (``photons_ch{c}``) and its colour (``color``)."""
    cols: dict[str, list[np.ndarray]] = {"frame": [], "x_nm": [], "y_nm": [], "z_nm": [], "photons": []}
    if per_channel:
        n_ch = batches[0].target_photons.shape[-1] if batches else 0
        cols.update({f"photons_ch{c}": [] for c in range(n_ch)}, color=[])
    bgs = []
    offset = 0
    for b in batches:
        s, k = torch.nonzero(b.target_mask, as_tuple=True)
        xyz = b.target_xyz_nm[s, k].double().cpu().numpy()
        cols["frame"].append((s + offset).cpu().numpy())
        cols["x_nm"].append(xyz[:, 0])
        cols["y_nm"].append(xyz[:, 1])
        cols["z_nm"].append(xyz[:, 2])
        cols["photons"].append(b.target_photons[s, k].sum(-1).double().cpu().numpy())
        if per_channel:
            phot = b.target_photons[s, k].double().cpu().numpy()
            for c in range(phot.shape[1]):
                cols[f"photons_ch{c}"].append(phot[:, c])
            cols["color"].append(b.target_color[s, k].cpu().numpy().astype(np.int64))
        offset += b.frames.shape[0]
        bgs.append(b.bg[:, 0].reshape(b.bg.shape[0], -1).mean(-1)[s].double().cpu().numpy())
    return LocTable({k: np.concatenate(v) for k, v in cols.items()}), np.concatenate(bgs)


CHANNEL_USE_MIN = 0.05  # below this share of the most used channel's, a channel counts as ignored


@torch.no_grad()
def channel_use(model: Localizer, x: torch.Tensor, aux: torch.Tensor | None) -> list[float]:
    """How much the network's outputs depend on each channel's content, relative to the most used channel.

    For channel c the input of that channel alone is swapped between the samples of the batch ``x`` (B, T, C, H, W)
    (rolled by one sample), which keeps its statistics and breaks its correspondence with the other channels; the
    score is the mean absolute change of the squashed outputs (``tanh`` of the raw heads). A channel near 0 is
    ignored: e.g. a 20/60 colour split whose network localizes from channel 0 alone and reads channel 1's
    photons off channel 0 (bench/RESULTS.md, issue 10). Empty for one channel or fewer than two samples."""
    b, c = x.shape[0], x.shape[2]
    if c < 2 or b < 2:
        return []
    base = torch.tanh(model(x, aux).float())
    change = []
    for ci in range(c):
        swapped = x.clone()
        swapped[:, :, ci] = x.roll(1, dims=0)[:, :, ci]
        change.append(float((torch.tanh(model(swapped, aux).float()) - base).abs().mean()))
    top = max(change)
    return [v / top if top > 0 else 0.0 for v in change]


#: colour probability below which a localization's colour is rejected (``plexloc color``'s default, DECODE-Plex)
COLOR_THRESHOLD = 0.9
#: the colour part of a validation set has 1/COLOR_SHARE of the set's samples (at least one). Measured on a 2-core
#: CPU with a 0.42 M-parameter AF647/CF680 model (examples/dual_color_plex.yaml, features 16, 128 validation samples):
#: +0.22 s on a 2.80 s validation with 64-px frames (+8 %, 671 emitters), +0.06 s on 0.61 s with 32-px frames
#: (+10 %, 199 emitters). Its accuracy is then known to about +-2-3 points (16 samples of 32 px gave 92.4 and 98.3 %
#: in two draws where 128 samples gave 95.6 %, and a 300-frame movie through plexloc fit/color/evaluate 95.1 %).
COLOR_SHARE = 8


def color_samples(n_samples: int) -> int:
    """Samples of the colour part of a validation set of ``n_samples``: ``ceil(n_samples / COLOR_SHARE)``."""
    return max(1, -(-int(n_samples) // COLOR_SHARE))


def has_colors(config) -> bool:
    """Whether a simulation/training configuration names dyes to assign (``ratiometric`` with two or more)."""
    pm = config.photon_model
    return pm.kind == "ratiometric" and pm.ratios is not None and len(pm.ratios) >= 2 and config.n_channels >= 2


def color_scores(truth: LocTable, pred: LocTable, ratios, *, dim: int,
                 threshold: float = COLOR_THRESHOLD) -> dict[str, float]:
    """Colour scores of the localizations ``pred`` (with ``photons_ch*`` and ``sigma_photons_ch*``, as the network's
    tables have them) against ``truth`` (with ``photons_ch*`` and ``color``).

    Colours are assigned as ``plexloc color --ratios ... --threshold`` does (:func:`assign_colors`), the tables
    matched as ``plexloc evaluate`` matches them. Returns, in percent, ``color_jaccard`` (JI of this set),
    ``color_accuracy`` and ``color_rejection`` (of the matched localizations, conventions.md); the RMSE of the
    predicted fraction of photons in channel 0 against the true one, ``color_fraction_rmse`` (a fraction: the dyes'
    channel-0 fractions must differ by several of it to be told apart); and per channel c
    ``photon_zscore_std_ch{c}``, the standard deviation of (predicted - true photons) / predicted sigma (1: the
    photon uncertainties that eq. 3 weighs by are calibrated); per dye k ``color_recall_{k}`` (%), the share of its
    emitters that were detected (a network that localizes from one channel alone misses the dye that is dim there,
    and its colour accuracy, of the matched localizations only, can still read 100 %). NaN where nothing matched."""
    colored, _ = assign_colors(pred, ratios, threshold)
    m = match(truth, colored, dim=dim)
    met = evaluate_matching(truth, colored, m, dim=dim, checks=False)
    nan = float("nan")
    out = {"color_jaccard": met.jaccard, "color_accuracy": met.color_accuracy, "color_rejection": met.color_rejection}
    n_ch = len(np.asarray(ratios)[0])
    ti, pj = m.tp_truth, m.tp_pred
    true_color = np.asarray(truth["color"])
    for k in range(len(ratios)):
        n_k = int(np.count_nonzero(true_color == k))
        out[f"color_recall_{k}"] = 100.0 * np.count_nonzero(true_color[ti] == k) / n_k if n_k else nan
    true_n = np.stack([np.asarray(truth[f"photons_ch{c}"], float)[ti] for c in range(n_ch)], axis=1)
    pred_n = np.stack([np.asarray(colored[f"photons_ch{c}"], float)[pj] for c in range(n_ch)], axis=1)
    sig = np.stack([np.asarray(colored[f"sigma_photons_ch{c}"], float)[pj] for c in range(n_ch)], axis=1)
    t_tot, p_tot = true_n.sum(axis=1), pred_n.sum(axis=1)
    ok = (t_tot > 0) & (p_tot > 0)
    df = pred_n[ok, 0] / p_tot[ok] - true_n[ok, 0] / t_tot[ok]
    out["color_fraction_rmse"] = float(np.sqrt(np.mean(df**2))) if df.size else nan
    z = (pred_n - true_n) / np.maximum(sig, 1e-9)
    for c in range(n_ch):
        out[f"photon_zscore_std_ch{c}"] = float(np.std(z[:, c])) if len(z) >= 2 else nan
    return {k: (nan if v is None else float(v)) for k, v in out.items()}


@dataclass
class ColorSet:
    """The colour part of a validation set: fixed samples of the configuration's ratiometric simulation (``sim``:
    its dyes, ratios, colour fractions and on-times), with the truth's per-channel photons and colours."""

    sim: Simulator
    batches: list[Batch]
    truth: LocTable
    ratios: list[list[float]]
    is_3d: bool
    threshold: float = COLOR_THRESHOLD

    @classmethod
    def simulate(
        cls, sim: Simulator, *, n_samples: int, batch_size: int, window: int, min_target_photons: float, seed: int,
        margin_px: float = 0.0, threshold: float = COLOR_THRESHOLD,
    ) -> ColorSet:
        """``n_samples`` of ``sim`` (a ratiometric simulator with two or more dyes) from the stream of ``seed``."""
        if not has_colors(sim.config):
            pm = sim.config.photon_model
            raise ValueError(f"a colour validation set needs a ratiometric simulation with two or more dyes, got "
                             f"photon_model kind {pm.kind!r} with ratios {pm.ratios}")
        batches = draw_batches(sim, n_samples=n_samples, batch_size=batch_size, window=window,
                               min_target_photons=min_target_photons, seed=seed, margin_px=margin_px)
        truth, _ = truth_of(batches, per_channel=True)
        ratios = [list(map(float, r)) for r in sim.config.photon_model.ratios]
        return cls(sim, batches, truth, ratios, bool(sim.channels[0].psf.is_3d), threshold)

    @torch.no_grad()
    def fit(self, model: Localizer, *, threshold: float = 0.5, amp: bool = False) -> LocTable:
        """The network's localizations of the set (frame = sample index), as ``plexloc fit`` tabulates them."""
        was_training = model.training
        model.eval()
        tables, n = [], 0
        for b in self.batches:
            x = batch_photons(self.sim, b.frames, b.map_offset_px)
            ctx = amp_context(amp, x.device)
            with ctx:
                raw = model(x, batch_aux(self.sim, b, model.spec))
            ex = extract(model.decode(raw), model.spec, threshold=threshold)
            tables.append(to_table(ex, np.arange(n, n + b.frames.shape[0]), model))
            n += b.frames.shape[0]
        model.train(was_training)
        return LocTable.concat(tables)

    def score(self, model: Localizer, *, threshold: float = 0.5, amp: bool = False) -> dict[str, float]:
        """:func:`color_scores` of ``model``'s fit of the set (``threshold``: the detection threshold)."""
        if model.spec.n_photons != len(self.ratios[0]):
            raise ValueError(f"colour validation needs one photon output per channel ({len(self.ratios[0])}); the "
                             f"model has {model.spec.n_photons}")
        return color_scores(self.truth, self.fit(model, threshold=threshold, amp=amp), self.ratios,
                            dim=3 if self.is_3d and model.spec.is_3d else 2, threshold=self.threshold)


@dataclass
class ValidationSet:
    batches: list[Batch]
    truth: LocTable
    crlb: dict[str, np.ndarray]  # crlb_x_nm, crlb_y_nm, crlb_z_nm of every truth row
    is_3d: bool
    color: ColorSet | None = None  # the colour part (multi-colour configurations)

    @classmethod
    def simulate(
        cls, sim: Simulator, *, n_samples: int, batch_size: int, window: int, min_target_photons: float, seed: int,
        margin_px: float = 0.0, color_sim: Simulator | None = None,
    ) -> ValidationSet:
        """``n_samples`` of the training simulation ``sim`` from the stream of ``seed``; with ``color_sim`` (the
        configuration's ratiometric simulation) also a colour part of :func:`color_samples` samples from its own
        stream (``seed + 1``), so that every validation of a run and a resumed run score the same samples."""
        batches = draw_batches(sim, n_samples=n_samples, batch_size=batch_size, window=window,
                               min_target_photons=min_target_photons, seed=seed, margin_px=margin_px)
        truth, bg = truth_of(batches)
        is_3d = bool(sim.channels[0].psf.is_3d)
        frac = np.array([c.throughput for c in sim.channels], dtype=float)
        bound = table_crlb(truth, [(c.psf, c.camera) for c in sim.channels], bg=bg,
                           z_offsets_nm=[c.z_offset_nm for c in sim.channels], photon_fractions=list(frac / frac.sum()))
        color = None
        if color_sim is not None:
            color = ColorSet.simulate(color_sim, n_samples=color_samples(n_samples), batch_size=batch_size,
                                      window=window, min_target_photons=min_target_photons, seed=seed + 1,
                                      margin_px=margin_px)
        return cls(batches, truth, bound, is_3d, color)

    @torch.no_grad()
    def score(self, model: Localizer, sim: Simulator, *, threshold: float = 0.5, amp: bool = False) -> dict[str, float]:
        """Validation loss (parts) and metrics of ``model`` on this set."""
        model.eval()
        spec = model.spec
        tables, losses, n, use = [], [], 0, []
        for b in self.batches:
            x = batch_photons(sim, b.frames, b.map_offset_px)
            ctx = amp_context(amp, x.device)
            aux = batch_aux(sim, b, spec)
            with ctx:
                raw = model(x, aux)
                if not use:  # on the first batch of two or more samples
                    use = channel_use(model, x, aux)
            pred = model.decode(raw)
            lp = decode_loss(pred, spec, target_xyz_nm=b.target_xyz_nm, target_photons=b.target_photons,
                             target_mask=b.target_mask, bg=b.bg)
            losses.append(np.array([float(lp.total), float(lp.count), float(lp.loc), float(lp.bg)]) * b.frames.shape[0])
            ex = extract(pred, spec, threshold=threshold)
            tables.append(to_table(ex, np.arange(n, n + b.frames.shape[0]), model))
            n += b.frames.shape[0]
        model.train()
        pred_t = LocTable.concat(tables)
        # scored in 3D where the PSF and the model are: a 2D model of a 3D PSF (emitters.z_range_nm [0, 0]) predicts
        # no z, and scored in 3D it read rmse_ax 0, eff_ax = JI, crlb_ratio_ax 0 where plexloc evaluate scores its
        # table in 2D (the truth has no z)
        dim = 3 if self.is_3d and spec.is_3d else 2
        m = match(self.truth, pred_t, dim=dim)
        metrics = evaluate_matching(self.truth, pred_t, m, dim=dim, px_size_nm=spec.px_size_nm[0], checks=False).to_dict()
        loss = np.sum(losses, axis=0) / n
        out = {"val_loss": loss[0], "val_loss_count": loss[1], "val_loss_loc": loss[2], "val_loss_bg": loss[3]}
        keys = ("jaccard", "recall", "precision", "rmse_lat", "rmse_ax", "eff_lat", "eff_ax", "eff_3d")
        out.update({k: metrics.get(k) for k in keys})
        out.update(error_scores(pred_t, m, self.crlb, dim=dim))
        out.update(sigma_calibration(pred_t, m, self.truth, dim=dim))  # stored with the model; plexloc fit applies it
        # the extraction the factors were measured with: plexloc fit uses the same for a model saved before the spread
        out["extraction_spread_px"] = float(SPREAD_RADIUS_PX or 0.0)
        out.update(offset_calibration(m, self.truth, dim=dim))
        out.update(photon_calibration(pred_t, m, self.truth))  # plexloc fit divides the photons by it
        out.update({f"channel_use_{c}": v for c, v in enumerate(use)})
        if dim == 3 and len(pred_t):  # the in-range share at the ends of the z range: plexloc fit's z-edge baseline
            out["z_edge_share"] = count_z_edge(pred_t["z_nm"], model_z_range(spec))[0] / len(pred_t)
            out["z_edge_rows"] = float(len(pred_t))
        if self.color is not None:
            out.update(self.color.score(model, threshold=threshold, amp=amp))
        return {k: (float("nan") if v is None else float(v)) for k, v in out.items()}


#: a multi-colour model whose validation colour accuracy (%) is below this, or whose rejected share (%) is above
#: POOR_COLOR_REJECTION, or one of whose dyes is detected (recall) at less than POOR_DYE_RECALL times the best
#: detected dye's rate, is not ready to assign colours (:func:`poor_colors`)
POOR_COLOR_ACCURACY = 90.0
POOR_COLOR_REJECTION = 30.0
POOR_DYE_RECALL = 0.5


def poor_colors(scores: dict[str, Any]) -> str | None:
    """What is poor about the colour scores of a validation (``color_accuracy``, ``color_rejection``,
    ``color_recall_{k}``, %), or None where they are good enough or absent (no colour part: one channel, linked
    channels). A NaN accuracy (no matched localization in the colour part) is poor.

    The accuracy counts the matched localizations only: a network that localizes from the channel where one dye is
    bright misses the other dye and still assigns what it finds right, so the dyes' recalls are compared too. An
    AF647/CF680 model (examples/dual_color_plex.yaml, a 0.42 M-parameter network on a 2-core CPU) read, after 15 min
    (step 602), validation JI 62 %, 98.6 % of the matched colours right, 1.4 % rejected, and CF680 detected at 0.9 %
    against AF647's 75 %; the recall rule flagged it until about step 1200 (CF680 35 % against 78 %) and not from
    step 1900 (47 % against 80 %, accuracy 93.5 %, JI 75 %). The accuracy stayed between 82.8 and 100 % throughout (its
    colour set of 199 emitters measures it to about +-3 points), 90 % leaving two of those points below a good
    model's 95 %; the rejected share never passed 17 % (30 % is far from a model that assigns)."""
    if "color_accuracy" not in scores:
        return None
    acc, rej = _as_float(scores.get("color_accuracy")), _as_float(scores.get("color_rejection"))
    if not math.isfinite(acc):
        return "no localization of its colour validation set matched (colour accuracy not measured)"
    recall = {int(k.rsplit("_", 1)[1]): _as_float(v) for k, v in scores.items()
              if k.startswith("color_recall_") and k.rsplit("_", 1)[1].isdigit()}
    recall = {k: v for k, v in recall.items() if math.isfinite(v)}
    said = []
    if acc < POOR_COLOR_ACCURACY or rej > POOR_COLOR_REJECTION:
        said.append(f"colour accuracy {acc:.1f} % of the matched localizations of its colour validation set, "
                    f"{rej:.1f} % rejected, {max(0.0, 100.0 - acc - rej):.1f} % given the wrong colour (ready: accuracy >= "
                    f"{POOR_COLOR_ACCURACY:g} % and at most {POOR_COLOR_REJECTION:g} % rejected)")
    if len(recall) >= 2:
        best, worst = max(recall, key=recall.get), min(recall, key=recall.get)
        if recall[worst] < POOR_DYE_RECALL * recall[best]:
            said.append(f"dye {worst} (row {worst} of photon_model.ratios) is detected at {recall[worst]:.1f} % "
                        f"against {recall[best]:.1f} % for dye {best}, so most of its emitters get no colour at all "
                        f"(the {acc:.1f} % accuracy counts the matched localizations only)")
    return "; ".join(said) or None


def _as_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan
