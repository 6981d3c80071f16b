"""A fixed simulated validation set, scored with the project's own metrics.

The set is drawn once from the simulator with its own seed (so every validation of a run, and a
resumed run, scores the same samples). Besides JI, RMSE and efficiency it reports how close the
errors come to the Cramér-Rao bound of the matched emitters (``crlb_ratio_*`` = RMSE / sqrt(mean
CRLB^2)) and whether the predicted uncertainties are calibrated (``zscore_std_*`` = standard deviation
of error / predicted sigma; 1 is calibrated) and, for the isolated emitters alone, the factors that would
calibrate the sigmas (``sigma_cal_*``), which the model file keeps for ``plexloc fit``.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from plexloc.evaluate.matching import match
from plexloc.evaluate.metrics import evaluate_matching
from plexloc.evaluate.uncertainty import error_scores, offset_calibration, sigma_calibration, table_crlb
from plexloc.infer.extract import extract
from plexloc.infer.fit import to_table
from plexloc.nets.localizer import Localizer
from plexloc.simulation.generator import Batch, BatchGenerator
from plexloc.simulation.geometry import transform_indicator
from plexloc.simulation.simulator import Simulator
from plexloc.table import LocTable
from plexloc.train.loss import decode_loss


def batch_photons(sim: Simulator, frames: torch.Tensor) -> torch.Tensor:
    """Raw batch frames (B, T, C, H, W) ADU -> photons, each channel through its own camera."""
    return sim.to_photons(frames.permute(2, 0, 1, 3, 4)).permute(1, 2, 0, 3, 4)


def batch_aux(sim: Simulator, batch: Batch, spec) -> torch.Tensor | None:
    """The network's auxiliary input of a batch: the transformation indicator (multi-channel models)."""
    if not spec.n_aux:
        return None
    return transform_indicator([ch.transform for ch in sim.channels], batch.roi_offset_px, sim.frame_shape, sim.px_size_nm)


def truth_of(batches: list[Batch]) -> tuple[LocTable, np.ndarray]:
    """Truth table (frame = sample index over all batches) and the per-target bg of channel 0."""
    cols: dict[str, list[np.ndarray]] = {"frame": [], "x_nm": [], "y_nm": [], "z_nm": [], "photons": []}
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


@dataclass
class ValidationSet:
    batches: list[Batch]
    truth: LocTable
    crlb: dict[str, np.ndarray]  # crlb_x_nm, crlb_y_nm, crlb_z_nm of every truth row
    is_3d: bool

    @classmethod
    def simulate(
        cls, sim: Simulator, *, n_samples: int, batch_size: int, window: int, min_target_photons: float, seed: int,
        margin_px: float = 0.0,
    ) -> ValidationSet:
        gen = BatchGenerator(sim, batch_size=batch_size, window=window, min_target_photons=min_target_photons, seed=seed,
                             margin_px=margin_px)
        batches = []
        left = n_samples
        while left > 0:
            gen.batch_size = min(batch_size, left)
            batches.append(gen())
            left -= gen.batch_size
        truth, bg = truth_of(batches)
        is_3d = bool(sim.channels[0].psf.is_3d)
        frac = np.array([c.throughput for c in sim.channels], dtype=float)
        bound = table_crlb(truth, [(c.psf, c.camera) for c in sim.channels], bg=bg,
                           z_offsets_nm=[c.z_offset_nm for c in sim.channels], photon_fractions=list(frac / frac.sum()))
        return cls(batches, truth, bound, is_3d)

    @torch.no_grad()
    def score(self, model: Localizer, sim: Simulator, *, threshold: float = 0.5, amp: bool = False) -> dict[str, float]:
        """Validation loss (parts) and metrics of ``model`` on this set."""
        model.eval()
        spec = model.spec
        tables, losses, n, use = [], [], 0, []
        for b in self.batches:
            x = batch_photons(sim, b.frames)
            ctx = torch.autocast("cuda", dtype=torch.bfloat16) if amp and x.is_cuda else nullcontext()
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
        dim = 3 if self.is_3d else 2
        m = match(self.truth, pred_t, dim=dim)
        metrics = evaluate_matching(self.truth, pred_t, m, dim=dim, px_size_nm=spec.px_size_nm[0]).to_dict()
        loss = np.sum(losses, axis=0) / n
        out = {"val_loss": loss[0], "val_loss_count": loss[1], "val_loss_loc": loss[2], "val_loss_bg": loss[3]}
        keys = ("jaccard", "recall", "precision", "rmse_lat", "rmse_ax", "eff_lat", "eff_ax", "eff_3d")
        out.update({k: metrics.get(k) for k in keys})
        out.update(error_scores(pred_t, m, self.crlb, dim=dim))
        out.update(sigma_calibration(pred_t, m, self.truth, dim=dim))  # stored with the model; plexloc fit applies it
        out.update(offset_calibration(m, self.truth, dim=dim))
        out.update({f"channel_use_{c}": v for c, v in enumerate(use)})
        return {k: (float("nan") if v is None else float(v)) for k, v in out.items()}
