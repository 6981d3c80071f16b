"""On-the-fly training batches: every call simulates fresh samples on the simulator's device.

A sample is a temporal window of ``window`` consecutive frames (default 3) of its own independent
sequence; its targets are the emitters of the central frame that are bright enough
(``min_target_photons``): dimmer emitters are rendered but are not targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from plexloc.simulation.simulator import Simulator


@dataclass
class Batch:
    """One training batch.

    Attributes:
        frames: (B, window, C, H, W) raw camera frames (ADU, integer-valued float).
        bg: (B, C, H, W) expected background photons of the central frame.
        target_xyz_nm: (B, K, 3) positions of the central frame's target emitters (reference channel).
        target_photons: (B, K, C) photons per channel of those emitters.
        target_mask: (B, K) True where a target exists (K is the batch's largest target count).
        target_color: (B, K) colour index.
        roi_offset_px: (B, 2) chip pixel (x, y) at each sample's ROI corner (sampled over the chip when the
            configuration's ``chip_size_px`` exceeds the frame; else its ``roi_offset_px``).
        map_offset_px: (B, C, 2) int64 pixel (x, y) of each sample's corner on channel c's sCMOS maps, where a
            channel's maps are larger than the frame (:meth:`BatchGenerator.sample_map_offsets`; 0 for the other
            channels); None where no channel's are. The frames were simulated through those cuts of the maps, and
            convert to photons through them (:func:`plexloc.train.validation.batch_photons`).
    """

    frames: Tensor
    bg: Tensor
    target_xyz_nm: Tensor
    target_photons: Tensor
    target_mask: Tensor
    target_color: Tensor
    roi_offset_px: Tensor
    map_offset_px: Tensor | None = None

    def to(self, device) -> Batch:
        return Batch(*(None if (v := getattr(self, f)) is None else v.to(device) for f in self.__dataclass_fields__))


class BatchGenerator:
    """Draws training batches from a :class:`Simulator`.

    Args:
        simulator: the simulator (its device is where batches are made).
        batch_size: samples per batch.
        window: frames per sample (odd; the target frame is the middle one).
        min_target_photons: emitters with fewer photons (all channels) in the target frame are not targets.
        seed: seed of the generator's own ``torch.Generator`` (reproducible batch streams).
        margin_px: emitters are also sampled this far outside the frame (same density); they light the
            frame's edges and shifted channels but are not targets.
        transform_jitter_nm: standard deviation of a random translation of every non-reference channel's
            image per sample (registration jitter: the model learns to tolerate a calibration slightly off).
        density_range_per_um2: ``(lo, hi)`` emitters/µm²: each sample's density drawn log-uniformly from this range
            instead of the simulator's one density (a network that sees sparse and crowded samples alike).

    sCMOS per-pixel maps larger than the frame (the full chip's, from ``plexloc calibrate-camera``, and a smaller
    training ROI ``frame_size``) are cut at a random position per sample, as DECODE does (Speiser et al. 2021): the
    network sees the chip's own spread of offsets, gains and read noise (its hot pixels included) and fits any ROI of
    the chip. Maps smaller than the frame are refused here (:func:`~plexloc.simulation.simulator.camera_map_crops`).
    """

    def __init__(
        self,
        simulator: Simulator,
        *,
        batch_size: int = 32,
        window: int = 3,
        min_target_photons: float = 100.0,
        seed: int = 0,
        margin_px: float = 0.0,
        transform_jitter_nm: float = 0.0,
        density_range_per_um2: tuple[float, float] | None = None,
    ):
        if window < 1 or window % 2 == 0:
            raise ValueError(f"window must be an odd number >= 1, got {window}")
        if density_range_per_um2 is not None:
            lo, hi = (float(v) for v in density_range_per_um2)
            if not (0 < lo <= hi < math.inf):
                raise ValueError(f"density_range_per_um2 must be (lo, hi) with 0 < lo <= hi, got {density_range_per_um2}")
            density_range_per_um2 = (lo, hi)
        self.density_range_per_um2 = density_range_per_um2
        self.simulator = simulator
        self.batch_size, self.window = int(batch_size), int(window)
        self.min_target_photons = float(min_target_photons)
        self.margin_px, self.transform_jitter_nm = float(margin_px), float(transform_jitter_nm)
        self.generator = torch.Generator(device=simulator.device).manual_seed(seed)
        self.map_crops = simulator.map_crops()  # {channel: map shape} of the maps cut per sample

    def __call__(self) -> Batch:
        sim, b, t = self.simulator, self.batch_size, self.window
        with torch.no_grad():
            em = sim.sample_emitters(n_sequences=b, n_frames=t, generator=self.generator,
                                     margin_nm=self.margin_px * max(sim.px_size_nm), sequence_density=self.sample_densities(b))
            bg = sim.sample_background(n_sequences=b, n_frames=t, generator=self.generator)  # (C, B*T, H, W)
            offset_px = self.sample_roi_offsets(b)
            shift = None
            if self.transform_jitter_nm > 0 and sim.n_channels > 1:
                per_sample = torch.randn(sim.n_channels, b, 2, generator=self.generator, device=sim.device)
                per_sample = per_sample * self.transform_jitter_nm
                per_sample[0] = 0.0  # the reference defines the coordinates
                shift = per_sample[:, em.frame_ix // t]
            map_offset = self.sample_map_offsets(b, offset_px)  # (B, C, 2); only where a channel's maps are cut
            raw = sim.camera(
                sim.expected_photons(em, bg, roi_offset_nm=sim.roi_offset_nm(offset_px)[em.frame_ix // t],
                                     channel_shift_nm=shift),
                generator=self.generator,
                # every frame of a sample's window through the same cut (the same pixels over time)
                map_offset_px=None if map_offset is None else map_offset.transpose(0, 1).repeat_interleave(t, dim=1),
                offsets_inside=True,  # drawn inside the maps (sample_map_offsets): no check, no synchronisation
            )
        c, _, h, w = raw.shape
        frames = raw.reshape(c, b, t, h, w).permute(1, 2, 0, 3, 4).contiguous()
        mid = t // 2
        bg_mid = bg.reshape(c, b, t, h, w)[:, :, mid].permute(1, 0, 2, 3).contiguous()

        w_nm, h_nm = sim.fov_nm
        inside = (em.xyz_nm[:, 0] >= 0) & (em.xyz_nm[:, 0] < w_nm) & (em.xyz_nm[:, 1] >= 0) & (em.xyz_nm[:, 1] < h_nm)
        on_mid = (em.frame_ix % t == mid) & (em.photons.sum(dim=1) >= self.min_target_photons) & inside
        tgt = em.select(on_mid)
        sample = tgt.frame_ix // t
        counts = torch.bincount(sample, minlength=b)
        k = int(counts.max()) if counts.numel() else 0
        slot = torch.arange(len(tgt), device=sample.device) - (torch.cumsum(counts, 0) - counts)[sample]
        dev = raw.device
        xyz = torch.zeros(b, k, 3, device=dev)
        phot = torch.zeros(b, k, c, device=dev)
        mask = torch.zeros(b, k, dtype=torch.bool, device=dev)
        color = torch.zeros(b, k, dtype=torch.int64, device=dev)
        xyz[sample, slot] = tgt.xyz_nm
        phot[sample, slot] = tgt.photons
        mask[sample, slot] = True
        color[sample, slot] = tgt.color
        return Batch(frames, bg_mid, xyz, phot, mask, color, offset_px, map_offset)

    def sample_densities(self, n: int) -> Tensor | None:
        """(n,) per-sample densities (emitters/µm², log-uniform over ``density_range_per_um2``), or None: the
        simulator's density for every sample."""
        if self.density_range_per_um2 is None:
            return None
        lo, hi = self.density_range_per_um2
        u = torch.rand(n, generator=self.generator, device=self.simulator.device, dtype=torch.float64)
        return lo * (hi / lo) ** u

    def sample_map_offsets(self, n: int, roi_offset_px: Tensor | None = None) -> Tensor | None:
        """(n, C, 2) int64 corners (x, y) of n samples' cuts of each channel's sCMOS maps, or None (and nothing drawn,
        so that a configuration without such maps keeps its sample stream) where no channel's maps are larger than
        the frame. Channels other than those of ``map_crops`` get 0.

        Maps of the chip (their shape the configuration's ``chip_size_px``, without ``split_view``) are cut at each
        sample's own ROI corner ``roi_offset_px`` ((n, 2) chip pixels, :meth:`sample_roi_offsets`; required then):
        the pixels whose offsets, gains and read noise the sample sees are those of the chip where its channel
        geometry puts it, as in a movie (:meth:`~plexloc.simulation.Simulator.iter_movie`); they were drawn
        independently of the ROI before (review 39), noise and geometry of two places on the chip. Other maps larger than the frame (no ``chip_size_px``, or maps of another size: of a
        region the ROI's position does not place) get a corner uniform over every position that keeps the frame inside
        the maps, drawn on the simulator's device for all samples at once, each channel its own, independently: two
        channels imaged on one chip (a split view) see pixels of one camera whose noise would be correlated between
        their images, which this leaves out. A split view's channels lie at their boxes on the chip, flipped, which a
        cut at the ROI's corner would not follow: its maps are drawn independently whatever their shape (movie
        simulation refuses maps larger than a split view's frames)."""
        if not self.map_crops:
            return None
        sim, dev = self.simulator, self.simulator.device
        h, w = sim.frame_shape
        chip = sim.config.chip_size_px
        at_roi = (set() if chip is None or sim.config.split_view is not None
                  else {c for c, shape in self.map_crops.items() if tuple(shape) == tuple(chip)})
        if at_roi and roi_offset_px is None:
            raise ValueError("sample_map_offsets: maps of the chip (chip_size_px) are cut at each sample's ROI corner: "
                             "give roi_offset_px, (n, 2), as sample_roi_offsets draws them")
        out = torch.zeros(n, sim.n_channels, 2, dtype=torch.int64, device=dev)
        for c, (mh, mw) in self.map_crops.items():  # a loop over channels; the samples are drawn together
            if c in at_roi:  # inside the chip: sample_roi_offsets keeps the ROI in [0, chip - frame]
                out[:, c] = roi_offset_px.to(device=dev).round().to(torch.int64)
                continue
            out[:, c, 0] = torch.randint(0, mw - w + 1, (n,), generator=self.generator, device=dev)
            out[:, c, 1] = torch.randint(0, mh - h + 1, (n,), generator=self.generator, device=dev)
        return out

    def sample_roi_offsets(self, n: int) -> Tensor:
        """(n, 2) ROI corners (x, y) in chip pixels, sampled over the chip, or the configuration's fixed offset.

        Each corner coordinate is drawn uniformly over ``[-(w - 1), chip - 1]`` and clamped into ``[0, chip - w]``:
        every chip pixel then lies in a training ROI at least as often as a pixel in the middle of the chip (up to
        twice as often within a ROI width of the border). A corner drawn uniformly over ``[0, chip - w]`` puts the
        chip's border pixels in 1/w as many ROIs as the middle's, and a biplane model trained so (40-px ROIs on a
        256-px chip) fitted 64-px movies at the chip's corner worse than in its middle: E_3D 72.0 at (0, 0), 73.4 at
        (192, 192), 75.8 at (96, 96) (bench/RESULTS.md, 2026-12-04)."""
        sim = self.simulator
        (ch, cw), (h, w) = sim.chip_size_px, sim.frame_shape
        dev = sim.device
        if ch > h or cw > w:
            x = torch.randint(-(w - 1), cw, (n,), generator=self.generator, device=dev).clamp_(0, cw - w)
            y = torch.randint(-(h - 1), ch, (n,), generator=self.generator, device=dev).clamp_(0, ch - h)
            return torch.stack([x, y], dim=1).to(torch.float32)
        return torch.tensor([sim.config.roi_offset_px], dtype=torch.float32, device=dev).expand(n, 2).clone()

    def __iter__(self):
        while True:
            yield self()
