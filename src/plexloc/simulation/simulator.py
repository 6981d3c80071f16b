"""The simulator: ``camera(noise(render(emitters, psf) + background))`` for every channel.

>>> import torch
>>> from plexloc.config import validate_config, SimulationConfig
>>> cfg = validate_config({"frame_size": [32, 32], "psf": {"kind": "gaussian"}, "camera": {"kind": "ideal"}},
...                       SimulationConfig)
>>> sim = Simulator(cfg)
>>> movie = sim.simulate_movie(5, generator=torch.Generator().manual_seed(0))
>>> movie.frames.shape, movie.truth.columns[:5]
(torch.Size([1, 5, 32, 32]), ['frame', 'x_nm', 'y_nm', 'z_nm', 'photons'])
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from plexloc.camera import Camera, camera_from_config
from plexloc.config.models import ChannelConfig, SimulationConfig
from plexloc.errors import InputError
from plexloc.psf import PSF, psf_from_config
from plexloc.psf.functional import frame_slots
from plexloc.simulation.background import background_frames, sample_background, sample_background_parts
from plexloc.simulation.emitters import Emitters, drifted, movie_drift_nm, sample_emitters
from plexloc.simulation.geometry import apply_transform, as_transform
from plexloc.table import LocTable


class SplineChannelWarning(UserWarning):
    """A multi-channel spline configuration that disagrees with (or leaves unsaid) its calibration file's channels."""


#: largest distance (nm) at the frame corners between a configuration's channel transform and its calibration's
TRANSFORM_MISMATCH_NM = 10.0


def check_spline_channels(config: SimulationConfig) -> None:
    """Warn (:class:`SplineChannelWarning`) where channel c >= 1 takes its spline PSF from a plexloc calibration
    file with several channels and

    - ``channels[c].psf.channel`` was not given: it defaults to 0, so channel c silently got channel 0's PSF;
    - ``channels[c].transform`` differs from the file's ``transform_nm`` of that calibration channel by more than
      ``TRANSFORM_MISMATCH_NM`` at a corner of the chip (``chip_size_px``) or, without one, of the frame at
      ``roi_offset_px`` (both are in chip coordinates, conventions.md): a configuration that kept the identity
      while its calibration measured the channels' registration fitted 37 -> 65 nm RMSE. (Compared only where
      ``psf.channel`` was given.)

    SMAP ``.mat`` calibrations are not read here (they carry no plexloc transform).
    """
    from plexloc.calibrate.fileformat import is_plexloc_calibration, load_calibration
    from plexloc.config.models import SplinePSFConfig

    px_x, px_y = config.px_size_xy_nm
    if config.chip_size_px is not None:
        (x0, y0), (h, w) = (0, 0), config.chip_size_px
    else:
        (x0, y0), (h, w) = config.roi_offset_px, config.frame_size
    corners = np.array([[x, y, 1.0] for x in (x0 * px_x, (x0 + w) * px_x) for y in (y0 * px_y, (y0 + h) * px_y)]).T
    for c, ch in enumerate(config.channels):
        psf = ch.psf
        if c == 0 or not isinstance(psf, SplinePSFConfig) or not is_plexloc_calibration(psf.calibration):
            continue
        cal = load_calibration(psf.calibration)
        if cal.n_channels < 2:
            continue
        if "channel" not in psf.model_fields_set:
            warnings.warn(
                f"channels.{c}.psf.channel is not given, so channel {c} uses channel 0 of the {cal.n_channels}-channel "
                f"calibration {psf.calibration}; give channels.{c}.psf.channel (usually {c})",
                SplineChannelWarning, stacklevel=3)
            continue  # which calibration channel was meant is unknown: no transform to compare with
        if psf.channel >= cal.n_channels:
            continue  # the PSF loader refuses it, naming the file
        own = np.asarray(ch.transform, dtype=np.float64)
        theirs = np.asarray(cal.channels[psf.channel].transform_nm, dtype=np.float64)
        a, b = own @ corners, theirs @ corners
        gap = float(np.hypot(*(a[:2] / a[2] - b[:2] / b[2])).max())
        if gap > TRANSFORM_MISMATCH_NM:
            warnings.warn(
                f"channels.{c}.transform {ch.transform} differs from transform_nm of channel {psf.channel} in the "
                f"calibration {psf.calibration} ({np.round(theirs, 5).tolist()}) by up to {gap:.0f} nm at the frame "
                f"corners (more than {TRANSFORM_MISMATCH_NM:g} nm); take the calibration's transform: "
                f"channels.{c}.transform: {{file: {psf.calibration}, channel: {psf.channel}}} (or re-register the "
                "channels)",
                SplineChannelWarning, stacklevel=3)


#: an astigmatic width below this fraction of its in-focus width ``s0`` is the Huang polynomial collapsing (its radicand
#: going to 0 or below, where :func:`plexloc.psf.functional.astigmatic_sigma` clamps it), not a defocused spot
MIN_ASTIGMATIC_WIDTH_FRACTION = 0.5


def _check_astigmatic_widths(psf: PSF, z_lo: float, z_hi: float, *, channel: int) -> None:
    """Refuse a PSF z range ``[z_lo, z_hi]`` over which an astigmatic model's width ``s0 sqrt(1 + u^2 + A u^3 +
    B u^4)`` falls below ``MIN_ASTIGMATIC_WIDTH_FRACTION`` of ``s0``: there the polynomial (fitted on a bead stack's
    own z range) has left its domain, and the radicand's clamp rendered needles of 1e-3 s0 (0.12 nm) in silence."""
    from plexloc.psf import AstigmaticPSF

    if not isinstance(psf, AstigmaticPSF):
        return
    z = torch.linspace(float(z_lo), float(z_hi), 4001, dtype=torch.float64)
    for i, axis in enumerate("xy"):
        u = (z - psf.c_nm[i]) / psf.d_nm[i]
        radicand = 1.0 + u * u + psf.A[i] * u**3 + psf.B[i] * u**4
        bad = radicand < MIN_ASTIGMATIC_WIDTH_FRACTION**2
        if bool(bad.any()):
            zb = z[bad]
            raise InputError(
                f"channel {channel}: the astigmatic width model of {axis} (s0 {psf.s0_nm[i]:g} nm, c {psf.c_nm[i]:g}, "
                f"d {psf.d_nm[i]:g}, A {psf.A[i]:g}, B {psf.B[i]:g}) collapses below {MIN_ASTIGMATIC_WIDTH_FRACTION:g} "
                f"s0 for PSF z in [{float(zb.min()):.0f}, {float(zb.max()):.0f}] nm, inside the emitters' z range "
                f"[{z_lo:.0f}, {z_hi:.0f}] nm (channel z offset included): the polynomial is valid only over the "
                "calibrated z range; narrow emitters.z_range_nm to it"
            )


def check_camera_maps(config: SimulationConfig, *, source=None, frame_field: str = "frame_size") -> dict[int, tuple[int, int]]:
    """:func:`camera_map_crops` of the configuration's own cameras, before anything is built or written: ``plexloc
    train`` and ``plexloc simulate`` (``source``: the configuration file; ``frame_field``: what set the frame,
    ``--frame-size`` where the command line did). The maps' shapes come from their files' headers
    (:func:`_map_shapes`): the simulator reads the maps when it is built, and this check read every map file a first
    time (``plexloc train`` read each twice before its first step)."""
    return camera_map_crops(config, [_map_shapes(ch.camera) for ch in config.channels], source=source,
                            frame_field=frame_field)


class _MapShapes:
    """A camera configuration's sCMOS map shape and files as :func:`camera_map_crops` asks for them."""

    def __init__(self, map_shape: tuple[int, int] | None, map_files: dict[str, str]):
        self.map_shape, self.map_files = map_shape, map_files


def _map_shapes(camera) -> object:
    """The ``map_shape`` (the first 2-D map of e_per_adu, baseline, read noise, as :class:`plexloc.camera.SCMOS`
    takes it) and ``map_files`` of a camera configuration, read from the headers of its ``.npy`` and TIFF map files
    (numpy's header, tifffile's page tags), not their pixels. Where a header cannot tell (a missing file, another
    suffix, a map that is not 2-D), the camera is built (:func:`camera_from_config`), whose reader says what is wrong."""
    from pathlib import Path

    fields = ("e_per_adu", "baseline", "read_variance" if getattr(camera, "read_variance", None) is not None
              else "read_sigma")
    files = {f: getattr(camera, f, None) for f in ("e_per_adu", "baseline", "read_sigma", "read_variance")}
    files = {f: str(v) for f, v in files.items() if isinstance(v, (str, Path))}
    if not files:
        return _MapShapes(None, {})
    try:
        shape = None
        for f in fields:
            if f not in files:
                continue
            path = Path(files[f])
            if path.suffix == ".npy":
                dims = np.load(path, mmap_mode="r", allow_pickle=False).shape  # the header only: nothing read
            elif path.suffix.lower() in (".tif", ".tiff"):
                import tifffile

                with tifffile.TiffFile(path) as tf:
                    dims = tuple(tf.series[0].shape)
            else:
                raise ValueError(path.suffix)
            dims = tuple(int(n) for n in dims if n != 1)
            if len(dims) != 2:
                raise ValueError(dims)
            shape = shape or dims
        return _MapShapes(shape, files)
    except Exception:  # noqa: BLE001 - the camera's own reader gives the error
        return camera_from_config(camera)


def camera_map_crops(config: SimulationConfig, cameras, *, source=None,
                     frame_field: str = "frame_size") -> dict[int, tuple[int, int]]:
    """The channels whose sCMOS per-pixel maps are larger than ``frame_size`` (maps of the full chip, or of a
    split-view channel's box, and a smaller training ROI): ``{channel: (rows, columns) of its maps}``. Training cuts
    such maps at a random position per sample (:meth:`plexloc.simulation.BatchGenerator.sample_map_offsets`). Maps
    of the frame's shape are used as they are (not listed). Maps smaller than the frame in either axis cannot cover
    it: an :class:`InputError` naming the channel's camera field, its map files and both shapes (``source``: the
    configuration file, for the message)."""
    frame = (int(config.frame_size[0]), int(config.frame_size[1]))
    crops: dict[int, tuple[int, int]] = {}
    for c, cam in enumerate(cameras):
        shape = getattr(cam, "map_shape", None)
        if shape is None or tuple(shape) == frame:
            continue
        if shape[0] < frame[0] or shape[1] < frame[1]:
            field = "camera" if len(config.channels) == 1 else f"channels[{c}].camera"
            files = ", ".join(f"{k}: {v}" for k, v in getattr(cam, "map_files", {}).items()) or "maps given as arrays"
            raise InputError(
                f"{field}: the sCMOS maps ({files}) are {shape[0]}x{shape[1]} px (rows x columns) but {frame_field}, "
                f"the simulated frame (the training ROI), is {frame[0]}x{frame[1]}: the maps must cover it (maps larger "
                f"than the frame are cut per training sample); set {frame_field} to at most {shape[0]}x{shape[1]} or "
                "measure the maps on a larger region of the chip (plexloc calibrate-camera)", source=source)
        crops[c] = (int(shape[0]), int(shape[1]))
    return crops


class Channel(nn.Module):
    """One channel: PSF, camera, transform ``T_c`` (reference -> channel, nm), focal offset, throughput."""

    def __init__(self, psf: PSF, camera: Camera, *, transform=None, z_offset_nm: float = 0.0, throughput: float = 1.0):
        super().__init__()
        self.psf, self.camera = psf, camera
        self.register_buffer("transform", as_transform(transform if transform is not None else torch.eye(3)))
        self.z_offset_nm, self.throughput = float(z_offset_nm), float(throughput)

    @classmethod
    def from_config(cls, config: ChannelConfig, *, px_size_nm: tuple[float, float], z_extent_nm: float) -> Channel:
        psf = psf_from_config(config.psf, px_size_nm=px_size_nm, z_extent_nm=z_extent_nm)
        return cls(
            psf,
            camera_from_config(config.camera),
            transform=config.transform,
            z_offset_nm=config.z_offset_nm,
            throughput=config.throughput,
        )

    def positions(self, xyz_nm: Tensor, roi_offset_nm: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Reference-channel positions -> this channel's image coordinates (x, y) and its PSF's z.

        Positions are relative to the ROI's corner; ``roi_offset_nm`` (N, 2) is that corner's position on
        the chip (the transform is in chip coordinates): ``r_c = T_c(r + o) - o``.
        """
        if roi_offset_nm is None:
            x, y = apply_transform(self.transform, xyz_nm[:, 0], xyz_nm[:, 1])
        else:
            ox, oy = roi_offset_nm[:, 0].to(xyz_nm.dtype), roi_offset_nm[:, 1].to(xyz_nm.dtype)
            x, y = apply_transform(self.transform, xyz_nm[:, 0] + ox, xyz_nm[:, 1] + oy)
            x, y = x - ox, y - oy
        return x, y, xyz_nm[:, 2] - self.z_offset_nm

    def render(
        self,
        xyz_nm: Tensor,
        photons: Tensor,
        frame_ix: Tensor,
        *,
        n_frames: int,
        frame_shape,
        roi_offset_nm: Tensor | None = None,
        shift_nm: Tensor | None = None,
        frame_slots: Tensor | None = None,
    ) -> Tensor:
        """Expected signal photons (n_frames, H, W) of emitters given in reference coordinates; ``shift_nm``
        (N, 2) displaces each emitter's image in this channel (a perturbed transform); ``frame_slots`` as in
        :meth:`PSF.render`."""
        x, y, z = self.positions(xyz_nm, roi_offset_nm)
        if shift_nm is not None:
            x, y = x + shift_nm[:, 0].to(x.dtype), y + shift_nm[:, 1].to(y.dtype)
        return self.psf.render(x, y, z, photons, frame_ix, n_frames=n_frames, frame_shape=frame_shape,
                               frame_slots=frame_slots)


def psf_z_range(channel: Channel, channel_config: ChannelConfig) -> tuple[float, float, str | None]:
    """The emitter z range (nm, from the reference channel's focal plane) over which a channel's PSF is modelled: its
    PSF's z range (a calibrated spline's; infinite for an analytic model) shifted by the channel's ``z_offset_nm``,
    and the PSF's calibration file (None where it has none). One computation for the simulator's refusal of an
    emitter z range beyond it, the MLE fit's :class:`~plexloc.mle.pipeline.ZRangeWarning` and ``plexloc crlb``'s
    check of ``--z``."""
    lo, hi = (float(v) + channel.z_offset_nm for v in channel.psf.z_range_nm)
    cal = getattr(channel_config.psf, "calibration", None)
    return lo, hi, None if cal is None else str(cal)


#: a movie's camera noise is drawn in blocks of frames of the movie (:func:`noise_block_frames`), not in the chunks
#: rendered, so that ``chunk_frames`` (a memory bound) leaves the movie as it is (the frames of an EMCCD movie differed
#: by up to 912 ADU between ``--chunk 7`` and the default before session 50). A block holds at most this many pixels
#: (all channels), and at most ``NOISE_BLOCK_MAX_FRAMES`` frames: the default chunk's, so that movies of frames up to
#: 256 x 256 px (one channel) are the numbers the default ``plexloc simulate`` made before
NOISE_BLOCK_PIXELS = 2**24
NOISE_BLOCK_MAX_FRAMES = 256


def noise_block_frames(frame_shape: tuple[int, int], n_channels: int) -> int:
    """Frames of a movie whose camera noise is drawn in one call: ``NOISE_BLOCK_PIXELS`` over the pixels of a frame of
    every channel, 1 to ``NOISE_BLOCK_MAX_FRAMES`` (256 frames of 256 x 256 px, 4 of 2048 x 2048 px). A chunk smaller
    than a block still draws the whole block (64 MB of float32 at most), held until the next chunks take it."""
    px = int(frame_shape[0]) * int(frame_shape[1]) * max(int(n_channels), 1)
    return max(1, min(NOISE_BLOCK_MAX_FRAMES, NOISE_BLOCK_PIXELS // px))


@dataclass
class MovieSimulation:
    """A simulated movie: raw frames ``(C, T, H, W)`` (ADU, integer-valued float), the truth table,
    the per-frame emitters and the expected background ``(C, T, H, W)`` in photons."""

    frames: Tensor
    truth: LocTable
    emitters: Emitters
    bg: Tensor


class Simulator(nn.Module):
    """Multi-channel SMLM simulator built from a :class:`~plexloc.config.SimulationConfig`.

    All randomness goes through the ``generator`` passed to each call (on the simulator's device).

    ``defaults_used``: the emitter and background fields that shape a movie and that the configuration leaves to
    plexloc's defaults, with their values (:meth:`~plexloc.config.SimulationConfig.defaulted_fields`; ``plexloc
    simulate`` prints them as a note); also logged at INFO level on the ``plexloc.simulation`` logger. Empty for a
    configuration that gives them all, and for one built from another's ``model_dump()`` (every field set).
    """

    def __init__(self, config: SimulationConfig):
        if not isinstance(config, SimulationConfig):  # a dict, a path: the first attribute read failed far inside
            raise TypeError(
                f"Simulator takes a SimulationConfig (or a TrainConfig), got {type(config).__name__}: load a YAML "
                "file with plexloc.config.load_config(path), or validate a dict with "
                "plexloc.config.validate_config(data, SimulationConfig)")
        super().__init__()
        self.config = config
        self.defaults_used = config.defaulted_fields()
        if self.defaults_used:  # a library user saw no word of them (the note was plexloc simulate's only)
            logging.getLogger("plexloc.simulation").info(
                "the configuration leaves %s to plexloc's defaults (Simulator.defaults_used)",
                ", ".join(f"{k} = {v}" for k, v in self.defaults_used.items()))
        self.px_size_nm = config.px_size_xy_nm
        self.frame_shape = (int(config.frame_size[0]), int(config.frame_size[1]))
        z_lo, z_hi = config.emitters.z_range_nm
        z_extent = max(abs(z_lo), abs(z_hi), 1.0) + max(abs(c.z_offset_nm) for c in config.channels)
        check_spline_channels(config)
        self.channels = nn.ModuleList(
            Channel.from_config(c, px_size_nm=self.px_size_nm, z_extent_nm=z_extent) for c in config.channels
        )
        ranges = [psf_z_range(ch, cc) for ch, cc in zip(self.channels, config.channels)]
        # the emitter z range every channel covers: the range to advise (one channel's own was refused by the next
        # channel of a biplane whose focal planes differ)
        all_lo, all_hi = max(r[0] for r in ranges), min(r[1] for r in ranges)
        for i, (ch, (lo, hi, cal)) in enumerate(zip(self.channels, ranges)):
            if z_lo < lo or z_hi > hi:
                if all_lo > all_hi:
                    fix = (": no emitter z range fits every channel (their PSFs cover emitter z "
                           + ", ".join(f"[{a:.0f}, {b:.0f}]" for a, b, _ in ranges)
                           + " nm with their z offsets): check the channels' z_offset_nm")
                else:
                    both = " (the z range every channel's PSF covers, with its z offset)" if len(ranges) > 1 else ""
                    fix = (f": narrow emitters.z_range_nm to [{max(all_lo, z_lo):.0f}, {min(all_hi, z_hi):.0f}] nm "
                           f"or less{both}" if max(all_lo, z_lo) <= min(all_hi, z_hi) else
                           f": move emitters.z_range_nm within [{all_lo:.0f}, {all_hi:.0f}] nm{both}")
                # the calibration file is named (the message named no file): its bead stack's z range is the limit
                raise InputError(
                    f"the configuration's emitters.z_range_nm [{z_lo:g}, {z_hi:g}] (channel {i} z offset "
                    f"{ch.z_offset_nm:g}) leaves the PSF's calibrated z range [{lo - ch.z_offset_nm:.0f}, "
                    f"{hi - ch.z_offset_nm:.0f}] nm" + fix
                    + (", or calibrate with a bead stack over a wider z range" if cal else ""),
                    source=cal)
            _check_astigmatic_widths(ch.psf, z_lo - ch.z_offset_nm, z_hi - ch.z_offset_nm, channel=i)

    @property
    def device(self) -> torch.device:
        for b in self.buffers():
            return b.device
        return torch.device("cpu")  # pragma: no cover

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def fov_nm(self) -> tuple[float, float]:
        """(width, height) of the reference field of view in nm."""
        return (self.frame_shape[1] * self.px_size_nm[0], self.frame_shape[0] * self.px_size_nm[1])

    # --- stages -------------------------------------------------------------------------------
    def sample_emitters(
        self, *, n_sequences: int, n_frames: int, generator=None, density_per_um2: float | None = None, margin_nm: float = 0.0,
        sequence_density: Tensor | None = None, blinks_per_molecule: float = 1.0,
    ) -> Emitters:
        """:func:`~plexloc.simulation.emitters.sample_emitters` with this configuration. ``blinks_per_molecule``: 1
        (every on-event a molecule of its own, as training samples have) unless given; :meth:`iter_movie` gives the
        configuration's ``emitters.blinks_per_molecule``."""
        return sample_emitters(
            self.config.emitters,
            n_sequences=n_sequences,
            n_frames=n_frames,
            fov_nm=self.fov_nm,
            photon_model=self.config.photon_model,
            throughputs=[c.throughput for c in self.channels],
            density_per_um2=density_per_um2,
            generator=generator,
            device=self.device,
            margin_nm=margin_nm,
            sequence_density=sequence_density,
            blinks_per_molecule=blinks_per_molecule,
        )

    def channel_background(self, c: int):
        """Channel ``c``'s background configuration: its own where it has one, else the top-level one."""
        own = self.config.channels[c].background
        return own if own is not None else self.config.background

    def sample_background(self, *, n_sequences: int, n_frames: int, generator=None) -> Tensor:
        """(C, n_sequences * n_frames, H, W) expected background photons, drawn per channel."""
        return torch.stack(
            [
                sample_background(
                    self.channel_background(c),
                    n_sequences=n_sequences,
                    n_frames=n_frames,
                    frame_shape=self.frame_shape,
                    px_size_nm=tuple(self.px_size_nm),  # (x, y): the field's scale in nm on both axes
                    generator=generator,
                    device=self.device,
                )
                for c in range(len(self.config.channels))
            ]
        )

    def expected_photons(
        self, emitters: Emitters, bg: Tensor, *, roi_offset_nm: Tensor | None = None, channel_shift_nm: Tensor | None = None
    ) -> Tensor:
        """(C, N, H, W) expected photons per pixel: PSF signal of every channel plus its background.

        ``roi_offset_nm``: (len(emitters), 2) chip position of each emitter's ROI corner; default the
        configuration's ``roi_offset_px``. ``channel_shift_nm``: (C, len(emitters), 2) extra image
        displacement per channel (registration jitter in training).
        """
        n = bg.shape[1]
        if roi_offset_nm is None and any(self.config.roi_offset_px):
            roi_offset_nm = self.roi_offset_nm().expand(len(emitters), 2)
        slots = None  # the emitters of each frame, laid out once for all channels whose render uses it
        if len(emitters) and n and any(ch.psf.uses_frame_slots(self.frame_shape) for ch in self.channels):
            slots = frame_slots(emitters.frame_ix, n)
        return torch.stack(
            [
                ch.render(emitters.xyz_nm, emitters.photons[:, c], emitters.frame_ix, n_frames=n,
                          frame_shape=self.frame_shape, roi_offset_nm=roi_offset_nm,
                          shift_nm=None if channel_shift_nm is None else channel_shift_nm[c], frame_slots=slots)
                + bg[c]
                for c, ch in enumerate(self.channels)
            ]
        )

    def roi_offset_nm(self, offset_px: Tensor | None = None) -> Tensor:
        """(…, 2) chip position (nm) of ROI corners given in pixels (default: the configuration's ``roi_offset_px``)."""
        if offset_px is None:
            offset_px = torch.tensor([self.config.roi_offset_px], dtype=torch.float32, device=self.device)
        return offset_px.to(torch.float32) * torch.tensor(self.px_size_nm, dtype=torch.float32, device=offset_px.device)

    def channel_margin_px(self) -> float:
        """The band around the reference field whose emitters light the field (training and movies sample it; the
        truth keeps those inside): half a PSF patch, where an emitter just outside spills light onto the edge (a real
        movie has them; a field without them lacked about 3 % of its light and the network never saw a spot cut by the
        edge from outside), plus, with several channels, the largest shift of any channel anywhere on the chip."""
        half_patch = max(max(ch.psf.roi_px) for ch in self.channels) / 2
        if self.n_channels == 1:
            return float(math.ceil(half_patch))

        from plexloc.simulation.geometry import transform_indicator

        h, w = self.chip_size_px
        corners = torch.tensor([[0.0, 0.0], [w - 1.0, 0.0], [0.0, h - 1.0], [w - 1.0, h - 1.0]])
        ind = transform_indicator([ch.transform.cpu() for ch in self.channels], corners, (1, 1), self.px_size_nm)
        return float(math.ceil(ind.abs().max().item() + half_patch))

    @property
    def chip_size_px(self) -> tuple[int, int]:
        return tuple(self.config.chip_size_px) if self.config.chip_size_px is not None else self.frame_shape

    def map_crops(self, *, source=None) -> dict[int, tuple[int, int]]:
        """:func:`camera_map_crops` of this simulator's channels: ``{channel: map shape}`` of the cameras whose maps
        are larger than the frame (cut per training sample); refuses maps smaller than the frame."""
        return camera_map_crops(self.config, [ch.camera for ch in self.channels], source=source)

    def camera(self, expected: Tensor, *, generator=None, map_offset_px: Tensor | None = None,
               offsets_inside: bool = False) -> Tensor:
        """(C, N, H, W) raw frames (ADU) from expected photons, each channel through its own camera.

        ``map_offset_px``: (C, N, 2) chip pixel (x, y) of each frame's corner on channel c's sCMOS maps, for the
        channels of :meth:`map_crops` (maps larger than the frame, cut per frame); other channels ignore their row.
        ``offsets_inside``: the caller drew them inside the maps (no check, no host-device synchronisation:
        :meth:`plexloc.camera.models.SCMOS.cut_maps`).
        """
        crops = self.map_crops() if map_offset_px is not None else {}
        return torch.stack([ch.camera(expected[c], generator=generator,
                                      **({"map_offset_px": map_offset_px[c], "offsets_inside": offsets_inside}
                                         if c in crops else {}))
                            for c, ch in enumerate(self.channels)])

    def to_photons(self, raw: Tensor, *, map_offset_px: Tensor | None = None, offsets_inside: bool = False) -> Tensor:
        """Inverse camera normalisation per channel, (C, N, ..., H, W) ADU -> photons; ``map_offset_px`` (C, N, 2)
        and ``offsets_inside`` as in :meth:`camera` (the cut each frame was simulated through)."""
        crops = self.map_crops() if map_offset_px is not None else {}
        return torch.stack([ch.camera.to_photons(raw[c], **({"map_offset_px": map_offset_px[c],
                                                               "offsets_inside": offsets_inside} if c in crops else {}))
                            for c, ch in enumerate(self.channels)])

    # --- whole movies -------------------------------------------------------------------------
    def _movie_map_offsets(self) -> dict[int, tuple[int, int]]:
        """``{channel: (x, y)}``: where a movie's frames sit on the channels' sCMOS maps larger than the frame (maps
        of the full chip): at ``roi_offset_px``, the chip pixel of the frame's corner, as a camera ROI's movie. An
        :class:`InputError` when the frame there reaches outside the maps, and for such maps with ``split_view``: a
        split-view channel's pixels lie at its box on the chip, flipped as ``split_view.flip`` says, not at the
        frame's corner (every channel was cut at ``roi_offset_px``, the same pixels for all), and ``plexloc fit``
        takes a split view's maps as each channel's box's (:func:`plexloc.camera.models.cut_maps_to_movie` is not
        applied to split views), so the movie could not be fitted through the same maps either."""
        x0, y0 = (int(v) for v in self.config.roi_offset_px)
        h, w = self.frame_shape
        out = {}
        crops = self.map_crops()
        if crops and self.config.split_view is not None:
            c, shape = next(iter(crops.items()))
            field = "camera" if self.n_channels == 1 else f"channels[{c}].camera"
            raise InputError(
                f"{field}: the sCMOS maps are {shape[0]}x{shape[1]} px (rows x columns), larger than the {h}x{w} frames, "
                "and the movie is a split view: its channels lie at their boxes on the chip (split_view.boxes), "
                "flipped as split_view.flip says, so one cut at roi_offset_px would give every channel the same, wrong "
                f"pixels. Give each channel the maps of its box ({h}x{w} px, cut out of the chip's maps at the box and "
                "flipped as the channel's image is), as plexloc fit --split-view takes them", source="split_view")
        for c, shape in crops.items():
            if x0 < 0 or y0 < 0 or y0 + h > shape[0] or x0 + w > shape[1]:  # iter_movie cuts unchecked
                field = "camera" if self.n_channels == 1 else f"channels[{c}].camera"
                raise InputError(
                    f"{field}: the sCMOS maps are {shape[0]}x{shape[1]} px (rows x columns); the movie's {h}x{w} frames "
                    f"at roi_offset_px [{x0}, {y0}] (the chip pixel x, y of their corner) reach row {y0 + h}, column "
                    f"{x0 + w}: outside the maps. Set roi_offset_px to where the simulated camera ROI lies on the "
                    "chip", source="roi_offset_px")
            out[c] = (x0, y0)
        return out

    def movie_cameras(self) -> list[Camera]:
        """The cameras a movie of :meth:`iter_movie` was recorded through: each channel's, with sCMOS maps larger
        than the frame cut at ``roi_offset_px`` (what ``plexloc fit --camera ... --roi-offset X Y`` cuts too)."""
        from plexloc.camera.models import cut_maps_to_movie

        cams = [ch.camera for ch in self.channels]
        for c, (x0, y0) in self._movie_map_offsets().items():
            cams[c] = cut_maps_to_movie(cams[c], None, (x0, y0), self.frame_shape, channel=c, source="roi_offset_px")[0]
        return cams

    def simulate_movie(
        self,
        n_frames: int,
        *,
        generator: torch.Generator | None = None,
        density_per_um2: float | None = None,
        chunk_frames: int | None = None,
        margin_px: float | None = None,
    ) -> MovieSimulation:
        """Simulate a whole movie in memory (see :meth:`iter_movie` for long movies)."""
        emitters, chunks = self.iter_movie(
            n_frames, generator=generator, density_per_um2=density_per_um2, chunk_frames=chunk_frames or n_frames,
            margin_px=margin_px,
        )
        frames, bgs = zip(*[(f, b) for _, f, b in chunks]) if n_frames else ((), ())
        frames_t = torch.cat(frames, dim=1) if frames else torch.zeros(self.n_channels, 0, *self.frame_shape, device=self.device)
        bg_t = torch.cat(bgs, dim=1) if bgs else torch.zeros_like(frames_t)
        rows = self.local_background(emitters, bg_t, n_frames=n_frames) if len(emitters) and n_frames else None
        return MovieSimulation(frames_t, self.truth_table(emitters, bg_t, bg_rows=rows), emitters, bg_t)

    def iter_movie(
        self,
        n_frames: int,
        *,
        generator: torch.Generator | None = None,
        density_per_um2: float | None = None,
        chunk_frames: int = 256,
        margin_px: float | None = None,
    ) -> tuple[Emitters, Iterator[tuple[int, Tensor, Tensor]]]:
        """Emitters of the whole movie, and an iterator of ``(start_frame, raw (C, t, H, W), bg (C, t, H, W))``
        chunks that renders the movie piece by piece (memory bounded by ``chunk_frames``).

        The movie does not depend on ``chunk_frames``: the camera noise is drawn in blocks of the movie
        (:func:`noise_block_frames`), and the background's frames are made chunk by chunk from its random numbers drawn
        once (memory: the chunk, or a noise block where that is larger, never the whole movie's frames).

        Emitters are sampled once for the whole movie, so blinking continues across chunk borders. They are
        sampled over a margin around the reference field too (``margin_px``, default :meth:`channel_margin_px`, as
        in training): a real movie's edges hold light from emitters just outside, and with several channels a
        shifted channel's edge is as crowded as its middle; :meth:`truth_table` keeps the ones inside the
        reference field. ``margin_px=0``: no emitter outside (a sample that ends at the field's edge).

        sCMOS maps larger than the frame (measured on the full chip) are cut at ``roi_offset_px``: the movie is that
        camera ROI's (:meth:`movie_cameras`).

        A stage drift (``emitters.drift``, :func:`~plexloc.simulation.emitters.movie_drift_nm`) displaces every frame's
        emitters as they are rendered; the emitters returned (and the truth table) keep the sample's own positions.

        ``emitters.blinks_per_molecule`` > 1 groups the movie's on-events into molecules that blink at the same position
        that many times on average (:func:`~plexloc.simulation.emitters.sample_emitters`); ``id`` is the molecule.
        """
        if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)):
            raise TypeError(f"n_frames must be an integer number of frames, got {n_frames!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator (torch.Generator(device).manual_seed(seed)), got "
                            f"{generator!r}")
        n_frames = int(n_frames)
        if n_frames < 0:
            raise InputError(f"number of frames must be >= 0, got {n_frames}")
        if margin_px is not None and not (math.isfinite(margin_px) and margin_px >= 0):
            raise InputError(f"margin_px must be a finite number >= 0, got {margin_px}")
        margin = self.channel_margin_px() if margin_px is None else float(margin_px)
        emitters = self.sample_emitters(
            n_sequences=1, n_frames=n_frames, generator=generator, density_per_um2=density_per_um2,
            margin_nm=margin * max(self.px_size_nm), blinks_per_molecule=self.config.emitters.blinks_per_molecule,
        )
        # the background's random numbers, drawn as sample_background draws them; its frames made chunk by chunk (a
        # long movie held its whole background: 1500 frames of 256 x 256 px, 0.4 GB of a 1.1 GB peak)
        bg_parts = [sample_background_parts(self.channel_background(c),
                                            n_sequences=1, n_frames=n_frames, frame_shape=self.frame_shape,
                                            px_size_nm=tuple(self.px_size_nm), generator=generator, device=self.device)
                    for c in range(len(self.config.channels))]

        def bg_frames(lo: int, hi: int) -> Tensor:
            """(C, hi - lo, H, W) expected background photons of frames [lo, hi)."""
            return torch.stack([background_frames(level, field, frame_shape=self.frame_shape, n_frames=n_frames,
                                                  start=lo, stop=hi) for level, field in bg_parts])
        shown = drifted(emitters, movie_drift_nm(self.config.emitters.drift, n_frames), n_frames)  # as rendered
        at = self._movie_map_offsets()
        roi = torch.tensor([list(at.get(c, (0, 0))) for c in range(self.n_channels)], dtype=torch.int64,
                           device=self.device)  # (C, 2); channels without larger maps ignore their row

        block = noise_block_frames(self.frame_shape, self.n_channels)

        def draw(lo: int, hi: int) -> Tensor:
            """Raw frames ``[lo, hi)`` (``lo`` a multiple of ``block``): rendered at once, their camera noise drawn block
            by block of the movie, so that the random numbers each frame gets do not depend on ``chunk_frames``."""
            a, b = (int(v) for v in torch.searchsorted(emitters.frame_ix, torch.tensor([lo, hi], device=self.device)))
            sel = shown.select(slice(a, b))
            sel.frame_ix = sel.frame_ix - lo
            with torch.no_grad():
                expected = self.expected_photons(sel, bg_frames(lo, hi))
                parts = []
                for s0 in range(0, hi - lo, block):
                    s1 = min(s0 + block, hi - lo)
                    offsets = roi[:, None, :].expand(-1, s1 - s0, -1) if at else None
                    parts.append(self.camera(expected[:, s0:s1], generator=generator, map_offset_px=offsets,
                                             offsets_inside=True))  # checked by _movie_map_offsets
            return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

        def chunks() -> Iterator[tuple[int, Tensor, Tensor]]:
            ahead, ahead_end = None, 0  # frames drawn beyond the last chunk: [previous stop, ahead_end)
            for start in range(0, n_frames, chunk_frames):
                stop = min(start + chunk_frames, n_frames)
                have = [] if ahead is None else [ahead]
                if stop > ahead_end:  # up to the end of the block that holds the chunk's last frame
                    end = min(-(-stop // block) * block, n_frames)
                    have.append(draw(ahead_end, end))
                    ahead_end = end
                frames = have[0] if len(have) == 1 else torch.cat(have, dim=1)
                raw, ahead = frames[:, : stop - start], frames[:, stop - start:]
                ahead = ahead if ahead.shape[1] else None
                yield start, raw, bg_frames(start, stop)

        return emitters, chunks()

    def local_background(self, emitters: Emitters, bg: Tensor, *, start: int = 0, n_frames: int | None = None) -> Tensor:
        """(N, C) expected background photons of the pixel under each emitter in each channel's image (its position
        through the channel's transform, clamped into the frame), in its frame: ``bg`` (C, t, H, W) holds frames
        ``start`` .. ``start + t - 1`` of the movie (``emitters.frame_ix`` numbers the movie's frames). A channel whose
        background has no ``variation`` (flat frames) gets its frame's mean, the number the table held before. ``bg``
        of the first channels only (the reference's, ``(1, t, H, W)``): theirs (an IndexError before review 50).
        ``n_frames``: the movie's frame count, where a stage drift (``emitters.drift``) moved each emitter's image in its
        frame: the pixel is looked up where the drift put it, as :meth:`iter_movie` renders it (the sample's own position
        was up to 25 % off at variation 0.5 and 500 nm of drift over the movie)."""
        if n_frames is not None:
            emitters = drifted(emitters, movie_drift_nm(self.config.emitters.drift, n_frames), n_frames)
        h, w = self.frame_shape
        n = len(emitters)
        roi = self.roi_offset_nm().expand(n, 2) if any(self.config.roi_offset_px) else None
        f = (emitters.frame_ix - start).to(bg.device)
        out = []
        for c, ch in enumerate(list(self.channels)[: bg.shape[0]]):
            cfg = self.channel_background(c)
            if cfg.variation <= 0:
                out.append(bg.mean(dim=(2, 3))[c, f])
                continue
            x, y, _ = ch.positions(emitters.xyz_nm.to(bg.device).float(), None if roi is None else roi.to(bg.device))
            j = torch.floor(x / self.px_size_nm[0]).clamp(0, w - 1).to(torch.int64)
            i = torch.floor(y / self.px_size_nm[1]).clamp(0, h - 1).to(torch.int64)
            out.append(bg[c, f, i, j])
        return torch.stack(out, dim=1) if out else torch.zeros(n, 0, device=bg.device)

    def truth_table(self, emitters: Emitters, bg: Tensor | None = None, *, inside_only: bool = True,
                    bg_rows: Tensor | None = None) -> LocTable:
        """Ground-truth table (conventions.md columns) of per-frame emitters; ``bg`` (C, T, H, W) adds the expected
        background of the reference channel's pixel under each emitter in its frame (``bg``) and, for several
        channels, each channel's at the emitter's position in it (``bg_chN``; :meth:`local_background`). ``bg`` of
        one pixel per frame (C, T, 1, 1), as a frame's mean: that mean (the table's ``bg`` was the frame's mean before
        session 50 whatever ``bg`` held, up to ``background.variation`` off the emitter's own). ``bg_rows`` (N, C):
        each emitter's own, given (``plexloc simulate`` gathers them chunk by chunk); ``bg`` then only says that the
        table has the columns. Only emitters inside the reference field of view: those of the margin a
        movie samples (:meth:`iter_movie`) light its edges but are not targets. ``inside_only=False`` keeps them
        too (x, y outside ``[0, fov)``): the neighbours an edge emitter really had.

        ``id`` is the emitter's identity: the molecule, the same in every frame its on-event spans and, with
        ``emitters.blinks_per_molecule`` > 1 (a movie of :meth:`iter_movie`), over all of its on-events (blinks);
        unique in the table, not consecutive (molecules outside the field are left out)."""
        xy = emitters.xyz_nm[:, :2].detach()
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < self.fov_nm[0]) & (xy[:, 1] >= 0) & (xy[:, 1] < self.fov_nm[1])
        if bg_rows is None and bg is not None and tuple(bg.shape[-2:]) == self.frame_shape and len(emitters):
            bg_rows = self.local_background(emitters, bg)
        if inside_only and not bool(inside.all()):
            if bg_rows is not None:
                bg_rows = bg_rows[inside.to(bg_rows.device)]
            emitters = emitters.select(inside)
        local = None if bg_rows is None else bg_rows.detach().cpu().double().numpy()
        xyz = emitters.xyz_nm.detach().cpu().double().numpy()
        phot = emitters.photons.detach().cpu().double().numpy()
        cols = {
            "frame": emitters.frame_ix.cpu().numpy(),
            "x_nm": xyz[:, 0],
            "y_nm": xyz[:, 1],
            "z_nm": xyz[:, 2],
            "photons": phot.sum(axis=1),
            "id": emitters.id.cpu().numpy(),
        }
        if bg is not None and len(emitters) and local is not None:
            cols["bg"] = local[:, 0]
        elif bg is not None and len(emitters):
            per_frame = bg[0].mean(dim=(1, 2)).cpu().double().numpy()
            cols["bg"] = per_frame[emitters.frame_ix.cpu().numpy()]
        elif bg is not None:
            cols["bg"] = np.zeros(0)
        if self.n_channels > 1:
            for c in range(self.n_channels):
                cols[f"photons_ch{c}"] = phot[:, c]
            if bg is not None and bg.shape[0] == self.n_channels:  # each channel's own (e.g. 20 and 135 photons)
                for c in range(self.n_channels):
                    cols[f"bg_ch{c}"] = (np.zeros(0) if not len(emitters) else local[:, c] if local is not None else
                                         bg[c].mean(dim=(1, 2)).cpu().double().numpy()[emitters.frame_ix.cpu().numpy()])
        if self.config.photon_model.kind == "ratiometric":
            cols["color"] = emitters.color.cpu().numpy()
        return LocTable(cols)
