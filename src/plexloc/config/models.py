"""Typed configuration: microscope channels, PSF, camera, emitters, background.

Every model forbids unknown fields, so a misspelt key is an error rather than a silently ignored
setting. Units are in the field names (``_nm``, ``_px``, ``_frames``); photons are photons sent to
the detector before quantum efficiency; ``bg`` is photons per pixel per frame (conventions.md).

A single-channel configuration may give ``psf`` and ``camera`` at the top level instead of a
``channels`` list; it is read as one channel.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Range = tuple[float, float]


class _Model(BaseModel):
    # allow_inf_nan=False: every float field refuses NaN and infinity, naming the field (a photons_range of [1000, .inf]
    # or a z_range_nm of [.nan, 0] was accepted: NaN frames failed deep in the camera, a NaN z went into truth.csv, an
    # infinite density crashed in torch with "SymIntArrayRef expected to contain only concrete integers")
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def _range_pair(value, info):
    """A range given as one number (``photons_range: 1000``) is refused with the pair to write: pydantic said only
    "Input should be a valid tuple"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(f"is a range [min, max], two numbers; for the one value {value:g} write [{value:g}, {value:g}]")
    return value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _range_list(value, info):
    """``photon_model.channel_photons_range`` given as one range, or with an entry that is one number: pydantic said
    "Input should be a valid tuple" once per number; the message says what to write."""
    if _is_number(value):
        raise ValueError(f"is one range [min, max] per channel, e.g. [[{value:g}, {value:g}], [{value:g}, {value:g}]] "
                         "for two channels")
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) for v in value):
        a, b = value
        raise ValueError(f"is one range [min, max] per channel, a list of pairs; got the one range [{a:g}, {b:g}]: "
                         f"write it once per channel, e.g. [[{a:g}, {b:g}], [{a:g}, {b:g}]] for two channels")
    if isinstance(value, (list, tuple)):
        for c, v in enumerate(value):
            if _is_number(v):
                raise ValueError(f"entry {c} (channel {c}) is the one number {v:g}: each channel's entry is a range "
                                 f"[min, max]; for the one value write [{v:g}, {v:g}]")
    return value


#: the x / y pairs of the astigmatic PSF, with what each pair is (a one-number value is refused with these words)
_XY_PAIRS = {"s0_nm": "the in-focus widths in x and y (nm); for the same width write [{v:g}, {v:g}]",
             "c_nm": "the focal planes of x and y (nm), usually of opposite sign, e.g. [-{a:g}, {a:g}]",
             "A": "the third-order defocus coefficients of x and y; for the same value write [{v:g}, {v:g}]",
             "B": "the fourth-order defocus coefficients of x and y; for the same value write [{v:g}, {v:g}]"}


def _xy_pair(value, info):
    """An astigmatic PSF's x / y pair given as one number: said what the two numbers are (pydantic: "Input should be
    a valid tuple")."""
    if _is_number(value):
        raise ValueError("is [x, y], two numbers: " + _XY_PAIRS[info.field_name].format(v=value, a=abs(value)))
    return value


#: the smallest frame side plexloc simulates, trains on and fits (pixels)
MIN_FRAME_PX = 4


def _frame_pair(value, info):
    """``frame_size`` / ``chip_size_px`` given as one number, or with a side below ``MIN_FRAME_PX``: said what to write
    (pydantic said "Input should be a valid tuple" or ">= 4" alone)."""
    what = "the simulated frame (the training ROI)" if info.field_name == "frame_size" else "the camera chip"
    if _is_number(value):
        raise ValueError(f"is [height, width] of {what} in pixels, two numbers; for a square one of {value:g} px write "
                         f"[{value:g}, {value:g}]")
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) for v in value):
        small = [v for v in value if v < MIN_FRAME_PX]
        if small:
            raise ValueError(
                f"is [height, width] of {what} in pixels; {small[0]:g} px is below "
                f"{MIN_FRAME_PX}, the smallest side plexloc takes: give at least [{MIN_FRAME_PX}, {MIN_FRAME_PX}] "
                "(a frame is usually 32-256 px a side; the size is in pixels, not µm)")
    return value


def _check_range(value: Range, *, low: float | None = None) -> Range:
    lo, hi = value
    if hi < lo:
        raise ValueError(f"range must be [min, max] with min <= max, got [{lo}, {hi}]")
    if low is not None and lo < low:
        raise ValueError(f"range minimum must be >= {low}, got {lo}")
    return value


# ----------------------------------------------------------------------------------------- PSF
class GaussianPSFConfig(_Model):
    """2D Gaussian PSF, pixel-integrated (z is ignored)."""

    kind: Literal["gaussian"] = "gaussian"
    sigma_nm: PositiveFloat | tuple[PositiveFloat, PositiveFloat] = 130.0
    roi_px: int | None = Field(default=None, ge=3, description="patch size rendered per emitter; default from sigma")


class AstigmaticPSFConfig(_Model):
    """3D astigmatic Gaussian: ``sigma_i(z) = s0_i * sqrt(1 + u^2 + A_i u^3 + B_i u^4)``, ``u = (z - c_i) / d_i``
    (Huang et al. 2008), index i = x, y."""

    kind: Literal["astigmatic"] = "astigmatic"
    s0_nm: tuple[PositiveFloat, PositiveFloat] = (120.0, 120.0)
    c_nm: tuple[float, float] = (-250.0, 250.0)
    d_nm: PositiveFloat | tuple[PositiveFloat, PositiveFloat] = 400.0
    A: tuple[float, float] = (0.0, 0.0)
    B: tuple[float, float] = (0.0, 0.0)
    roi_px: int | None = Field(default=None, ge=3)

    _pairs = field_validator("s0_nm", "c_nm", "A", "B", mode="before")(_xy_pair)


class SplinePSFConfig(_Model):
    """Cubic-spline PSF from a bead calibration: plexloc's own ``.h5`` (``plexloc calibrate``) or SMAP ``_3dcal.mat``."""

    kind: Literal["spline"] = "spline"
    calibration: Path
    channel: int = Field(default=0, ge=0, description="channel of a multi-channel calibration file")
    roi_px: int | None = Field(default=None, ge=3, description="crop of the spline's lateral extent")


PSFConfig = Annotated[Union[GaussianPSFConfig, AstigmaticPSFConfig, SplinePSFConfig], Field(discriminator="kind")]


# -------------------------------------------------------------------------------------- camera
#: the unit of each camera field, for messages (conventions.md, Cameras)
CAMERA_UNITS = {"qe": "fraction of photons detected, 0-1", "spurious_charge": "e-/px/frame", "em_gain": "EM gain",
                "e_per_adu": "e-/ADU", "baseline": "ADU", "read_sigma": "e-", "read_variance": "e-²",
                "noise_rate": "photons/px/frame", "saturation_adu": "ADU"}
#: the files a per-pixel sCMOS map may be
MAP_SUFFIXES = (".npy", ".tif", ".tiff")


def _number_not_text(value, info):
    """A camera number given as text: ``"45"`` is read as 45; ``"100 ADU"`` is refused naming the unit (the value
    was read as a map path before: "got '/tmp/walk/100 ADU'"). ``true`` / ``false`` and an infinite value are refused:
    pydantic read ``em_gain: true`` as 1 (every photon count 300x too high) and ``em_gain: .inf`` as infinity (every
    photon count 0), without a word."""
    if isinstance(value, bool):
        raise ValueError(f"takes a number ({CAMERA_UNITS.get(info.field_name, 'a number')}), not true or false")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            if Path(value.strip()).suffix.lower() in MAP_SUFFIXES:  # a map path where only an sCMOS takes maps
                raise ValueError(f"takes a number ({CAMERA_UNITS.get(info.field_name, 'a number')}), not a per-pixel "
                                 "map: only kind scmos takes maps (was this camera written for an sCMOS, e.g. by "
                                 "plexloc calibrate-camera --kind scmos?)") from None
            raise ValueError(f"takes a number ({CAMERA_UNITS.get(info.field_name, 'a number')}); units are not written "
                             "in the value") from None
    if isinstance(value, (int, float)) and math.isinf(value):
        raise ValueError(f"takes a finite number ({CAMERA_UNITS.get(info.field_name, 'a number')})")
    return value


def _qe_fraction(value):
    """``qe``: a fraction of the photons; a number from 5 to 100 read as a percentage is refused with the fraction (a qe
    of 80 failed with 'less than or equal to 1' alone; above 1 and under 5 pydantic's own bound is said)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 5 <= value <= 100:
        raise ValueError(f"is the fraction of photons detected, 0-1: {value:g} reads as a percentage; write qe: "
                         f"{value / 100:g}")
    return value


def _check_saturation(value, info):
    """``saturation_adu``: None, or a finite number (text such as ``"4095"`` read as a number)."""
    if value is None:
        return value
    value = _number_not_text(value, info)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ValueError(f"must be a finite number of ADU (the raw value the camera clips at), got {value!r}")
    return float(value)


def _saturation_above_baseline(model):
    """``saturation_adu`` above a scalar ``baseline`` (a baseline map is checked when the camera is built)."""
    sat, base = getattr(model, "saturation_adu", None), getattr(model, "baseline", 0.0)
    if sat is not None and isinstance(base, (int, float)) and not sat > base:
        raise ValueError(f"saturation_adu ({sat:g} ADU) must be above the baseline ({base:g} ADU): the camera clips "
                         "bright pixels there, above its offset")
    return model


def _drop_unset_saturation(data):
    """A dump without ``saturation_adu: null`` (as before the field existed: saved configurations stay the same)."""
    if isinstance(data, dict) and data.get("saturation_adu", 0.0) is None:
        data.pop("saturation_adu")
    return data


#: ``saturation_adu`` of every camera: the raw value (ADU) at which it clips, when below the file's integer maximum
SATURATION_DOC = ("raw value (ADU) the camera clips at: a 12-bit camera's 4095, a 14-bit one's 16383 written into a "
                  "16-bit file; default: the file's integer maximum (65535 for uint16), or a level found in the movie "
                  "(plexloc.camera.check)")


class EMCCDConfig(_Model):
    """EMCCD: Poisson -> gamma (EM gain) -> Gaussian read noise -> ADU (baseline, quantisation, uint16).

    Numbers only (a value such as ``"100 ADU"`` is refused: the unit is the field's, conventions.md)."""

    kind: Literal["emccd"] = "emccd"
    qe: float = Field(default=0.9, gt=0, le=1)
    spurious_charge: NonNegFloat = 0.002
    em_gain: float = Field(default=300.0, ge=1)
    e_per_adu: PositiveFloat = 45.0
    baseline: NonNegFloat = 100.0
    read_sigma: NonNegFloat = 74.4
    saturation_adu: float | None = Field(default=None, description=SATURATION_DOC)

    _numbers = field_validator("qe", "spurious_charge", "em_gain", "e_per_adu", "baseline", "read_sigma",
                               mode="before")(_number_not_text)
    _qe = field_validator("qe", mode="before")(_qe_fraction)
    _saturation = field_validator("saturation_adu", mode="before")(_check_saturation)
    _above = model_validator(mode="after")(_saturation_above_baseline)

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        return _drop_unset_saturation(handler(self))


class SCMOSConfig(_Model):
    """sCMOS: Poisson -> Gaussian read noise -> ADU. ``e_per_adu``, ``baseline`` (ADU) and
    ``read_sigma`` (e-) are scalars or paths to per-pixel maps (.npy or .tif, frame-sized). The read noise
    may be given as ``read_variance`` instead (e-², scalar or map: the variance map a camera calibration
    gives, converted from ADU² by multiplying with ``e_per_adu²``); not both. Text that is neither a number nor a
    .npy/.tif path (``"100 ADU"``) is refused naming the field's unit."""

    kind: Literal["scmos"] = "scmos"
    qe: float = Field(default=0.8, gt=0, le=1)
    spurious_charge: NonNegFloat = 0.0
    e_per_adu: PositiveFloat | Path = 0.5
    baseline: NonNegFloat | Path = 100.0
    read_sigma: NonNegFloat | Path = 1.5
    read_variance: NonNegFloat | Path | None = None
    saturation_adu: float | None = Field(default=None, description=SATURATION_DOC)

    _numbers = field_validator("qe", "spurious_charge", mode="before")(_number_not_text)
    _qe = field_validator("qe", mode="before")(_qe_fraction)
    _saturation = field_validator("saturation_adu", mode="before")(_check_saturation)

    @model_validator(mode="after")
    def _one_read_noise(self):
        if self.read_variance is not None and "read_sigma" in self.model_fields_set:
            raise ValueError("give the read noise as read_sigma (e-) or as read_variance (e-²), not both")
        return _saturation_above_baseline(self)

    @model_serializer(mode="wrap")
    def _dump_one_read_noise(self, handler):
        """With ``read_variance`` given, the (unused) default ``read_sigma`` is left out of the dump, so that a saved
        configuration (config.yaml, a model file) validates again."""
        data = handler(self)
        if self.read_variance is not None and isinstance(data, dict):
            data.pop("read_sigma", None)
        return _drop_unset_saturation(data)

    @field_validator("e_per_adu", "baseline", "read_sigma", "read_variance", mode="before")
    @classmethod
    def _scalar_or_map(cls, value, info):
        """One message for a bad value, instead of one per member of the number-or-path union."""
        if value is None and info.field_name == "read_variance":
            return value
        positive = info.field_name == "e_per_adu"
        allowed = f"a number {'> 0' if positive else '>= 0'} or the path of a per-pixel map (.npy or .tif)"
        if isinstance(value, bool) or not isinstance(value, (int, float, str, Path)):
            raise ValueError(f"must be {allowed}")
        if isinstance(value, str) and Path(value.strip()).suffix.lower() not in MAP_SUFFIXES:
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"takes a number ({CAMERA_UNITS[info.field_name]}) or the path of a per-pixel map "
                                 "(.npy or .tif); units are not written in the value") from None
        if isinstance(value, (int, float)):
            value = float(value)
            if not (value == value and abs(value) != float("inf") and (value > 0 if positive else value >= 0)):
                raise ValueError(f"must be {allowed}")
        elif not str(value).strip():
            raise ValueError(f"must be {allowed}")
        return value


class IdealCameraConfig(_Model):
    """Shot noise only, frames in photons (qe 1, no offset)."""

    kind: Literal["ideal"] = "ideal"
    saturation_adu: float | None = Field(default=None, description=SATURATION_DOC)

    _saturation = field_validator("saturation_adu", mode="before")(_check_saturation)
    _above = model_validator(mode="after")(_saturation_above_baseline)

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        return _drop_unset_saturation(handler(self))


class AdditiveNoiseCameraConfig(_Model):
    """Signal-independent noise, frames in photons plus ``baseline``: ``photons + Poisson(noise_rate) +
    N(0, read_sigma²)``, rounded. The signal carries no shot noise, so this is not a physical camera: it is
    the observation model of seed 002 (Aritake et al., quad-plane) read literally (its eq. 3: noiseless
    spots plus Poisson noise of rate 10 and Gaussian noise of variance 9, background 0), kept so that a
    benchmark on that paper's setting is like for like. ``noise_rate`` is a fixed noise term, not the
    background: the simulation's ``background`` adds to the expected signal as usual (0 in that paper)."""

    kind: Literal["additive"] = "additive"
    noise_rate: NonNegFloat = 10.0
    read_sigma: NonNegFloat = 3.0
    baseline: NonNegFloat = 100.0
    saturation_adu: float | None = Field(default=None, description=SATURATION_DOC)

    _numbers = field_validator("noise_rate", "read_sigma", "baseline", mode="before")(_number_not_text)
    _saturation = field_validator("saturation_adu", mode="before")(_check_saturation)
    _above = model_validator(mode="after")(_saturation_above_baseline)

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        return _drop_unset_saturation(handler(self))


CameraConfig = Annotated[
    Union[EMCCDConfig, SCMOSConfig, IdealCameraConfig, AdditiveNoiseCameraConfig], Field(discriminator="kind")
]


# ------------------------------------------------------------------------------------ channels
MAX_PERSPECTIVE_PER_NM = 1e-5
"""Largest credible perspective term of a channel transform (per nm): a weight change of 1 across 100 um."""
MAX_LINEAR_DEVIATION = 0.2
"""Largest entry of ``|L - I|`` (L: a transform's linear part) that a channel transform is expected to have."""


class TransformWarning(UserWarning):
    """A channel transform far from the identity (a mirror or rotation that belongs in ``split_view.flip``)."""


class ChannelConfig(_Model):
    """One imaging channel: its PSF, camera and geometry relative to the reference channel 0.

    ``transform`` is the 3x3 matrix (homogeneous, nm) mapping a reference-channel position to this
    channel's image: ``r_c = T_c r_0``. In a YAML file it may name the file a plexloc command wrote it to instead
    (``{file: T.json}``, ``{file: PSF.json, channel: 1}``; :mod:`plexloc.config.transforms`): the loader reads the
    matrix in its place, so a configuration saved again (:func:`plexloc.config.save_config`, a run folder's
    config.yaml, a model file) holds the matrix itself and needs no other file. ``z_offset_nm`` is this channel's
    focal plane relative to the reference (a biplane's second plane); its PSF sees ``z - z_offset_nm``. ``throughput`` is the
    fraction of an emitter's photons this channel receives under the ``linked`` photon model.
    """

    psf: PSFConfig
    camera: CameraConfig
    transform: list[list[float]] = Field(default_factory=lambda: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    z_offset_nm: float = 0.0
    throughput: float = Field(default=1.0, gt=0, le=1)
    background: BackgroundConfig | None = Field(
        default=None, description="this channel's background (photons/px/frame); default: the top-level background"
    )

    @field_validator("transform", mode="before")
    @classmethod
    def _transform_file(cls, value):
        """A ``{file: ...}`` reference is read by :func:`plexloc.config.load_config`, which knows the YAML's folder;
        a mapping that reaches the model was not (a dict built in code, or a loader that does not read files)."""
        if isinstance(value, dict):
            raise ValueError("a transform given as a file ({file: T.json} or {file: PSF.json, channel: 1}) is read by "
                             "plexloc.config.load_config from a YAML file; in code, give the matrix: "
                             "plexloc.config.read_transform(path, channel).matrix")
        return value

    @field_validator("transform")
    @classmethod
    def _check_transform(cls, value: list[list[float]]) -> list[list[float]]:
        """A 3x3 matrix whose perspective terms could be real.

        ``|T[2][0]|, |T[2][1]|`` (relative to ``T[2][2]``) above ``MAX_PERSPECTIVE_PER_NM`` would change the
        homogeneous weight by more than 1 across 100 um: no microscope does that, while a matrix written
        transposed (the translation in the bottom row instead of the third column) does. Such a matrix was
        accepted as a projective transform, and ``simulate`` piled the channel onto a few pixels.
        """
        if len(value) != 3 or any(len(row) != 3 for row in value):
            raise ValueError(f"transform must be a 3x3 matrix, got rows of lengths {[len(r) for r in value]}")
        if abs(value[2][2]) == 0:
            raise ValueError("transform[2][2] must not be 0")
        w = value[2][2]
        if max(abs(value[2][0] / w), abs(value[2][1] / w)) > MAX_PERSPECTIVE_PER_NM:
            raise ValueError(
                f"transform {value} has perspective terms [{value[2][0]}, {value[2][1]}] in its bottom row (above "
                f"{MAX_PERSPECTIVE_PER_NM:g} per nm, which cannot be real): it looks transposed; the translation (nm) "
                "belongs in the third column, [[a, b, tx], [c, d, ty], [0, 0, 1]] (conventions.md)")
        return value


class SplitViewConfig(_Model):
    """Several channels side by side on one camera frame (a dual-view / multi-view camera).

    ``boxes``: one ``[x, y, width, height]`` (pixels of the raw frame) per channel, all the same size;
    ``flip``: per channel ``none``, ``x`` (mirror left-right), ``y`` (up-down) or ``xy``, applied after
    cropping so that every channel's image has the reference's orientation. Channel transforms are then in
    the coordinates of those cropped (and flipped) images.
    """

    boxes: list[tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)], Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]]] = Field(min_length=1)
    flip: list[Literal["none", "x", "y", "xy"]] | None = None

    @model_validator(mode="after")
    def _check(self) -> SplitViewConfig:
        sizes = {(b[2], b[3]) for b in self.boxes}
        if len(sizes) != 1:  # each box named with its width x height (an unlabeled (w, h) tuple was printed)
            each = "; ".join(f"boxes[{c}] {list(b)}: {b[2]} x {b[3]} px" for c, b in enumerate(self.boxes))
            raise ValueError(f"all channel boxes must have the same width and height ([x, y, width, height] in pixels "
                             f"of the raw frame), got {each}: give every box the same width and height")
        if self.flip is not None and len(self.flip) != len(self.boxes):
            raise ValueError(f"flip needs one entry per box ({len(self.boxes)}), got {len(self.flip)}")
        return self


class PhotonModelConfig(_Model):
    """How an emitter's photons are shared among channels (conventions.md).

    ``linked``: one photon count, split by each channel's ``throughput`` (biplane / multi-plane).
    ``ratiometric``: each emitter has a colour k; channel c receives ``ratios[k][c]`` of its photons.
    ``independent``: a separate photon count per channel, each drawn from the emitter photon range.

    ``on_time_frames`` (ratiometric only): the mean exponential on-time of each colour (dye), e.g. the
    DECODE-Plex dual-colour protocol's 3 and 1 frames; default: every colour has ``emitters.on_time_frames``.
    ``color_fractions`` are then shares of the *active* emitters of a frame (the density's basis), so a
    colour with a shorter on-time has proportionally more fluorophores switching on.
    """

    kind: Literal["linked", "ratiometric", "independent"] = "linked"
    ratios: list[list[NonNegFloat]] | None = None
    color_fractions: list[NonNegFloat] | None = Field(
        default=None, description="share of each colour among the active emitters of a frame; default equal"
    )
    on_time_frames: list[PositiveFloat] | None = Field(
        default=None, description="mean on-time of each colour (frames); default: emitters.on_time_frames for all"
    )
    channel_photons_range: list[Range] | None = Field(
        default=None, description="independent only: each channel's photon range (one [lo, hi] per channel); "
        "default: emitters.photons_range for every channel",
    )

    @model_validator(mode="after")
    def _check(self) -> PhotonModelConfig:
        if self.kind == "ratiometric":
            if not self.ratios:
                raise ValueError("photon_model 'ratiometric' needs 'ratios' (one row of channel fractions per colour)")
            if len({len(r) for r in self.ratios}) != 1:
                raise ValueError("every row of 'ratios' must have one entry per channel")
            for k, row in enumerate(self.ratios):
                if sum(row) <= 0 or sum(row) > 1 + 1e-6:
                    raise ValueError(f"ratios[{k}] must sum to a value in (0, 1], got {sum(row)}")
            if self.color_fractions is not None and len(self.color_fractions) != len(self.ratios):
                raise ValueError("color_fractions needs one entry per colour (row of 'ratios')")
            if self.color_fractions is not None and sum(self.color_fractions) <= 0:
                raise ValueError(f"color_fractions must not all be 0, got {self.color_fractions}")
            if self.on_time_frames is not None and len(self.on_time_frames) != len(self.ratios):
                raise ValueError(f"on_time_frames needs one entry per colour (row of 'ratios', {len(self.ratios)}), "
                                 f"got {len(self.on_time_frames)}")
        elif self.ratios is not None:
            raise ValueError(f"'ratios' is only used by photon_model 'ratiometric', not '{self.kind}'")
        elif self.on_time_frames is not None:
            raise ValueError(f"per-colour 'on_time_frames' needs photon_model 'ratiometric', not '{self.kind}' "
                             "(use emitters.on_time_frames)")
        return self

    _ranges = field_validator("channel_photons_range", mode="before")(_range_list)

    @model_validator(mode="after")
    def _check_channel_range(self) -> PhotonModelConfig:
        if self.channel_photons_range is not None:
            if self.kind != "independent":
                raise ValueError(f"'channel_photons_range' is only used by photon_model 'independent', not '{self.kind}'")
            for c, r in enumerate(self.channel_photons_range):
                _check_range(r, low=0.0)
        return self

    @property
    def n_colors(self) -> int:
        return len(self.ratios) if self.kind == "ratiometric" and self.ratios else 1


# ------------------------------------------------------------------------- emitters/background
_FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Vec3 = tuple[_FiniteFloat, _FiniteFloat, _FiniteFloat]
_FiniteNonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class MovieDriftConfig(_Model):
    """Stage drift of a simulated movie (``emitters.drift``; whole movies only, never training samples).

    Every frame's emitters are drawn displaced by the drift of that frame, while the truth table keeps the sample's
    own positions (what a perfect fit after a perfect drift correction gives); ``plexloc simulate`` writes the drift
    per frame to ``truth_drift.csv``. The drift of frame ``k`` of ``T`` (nm, x y z) is
    ``linear_nm * k / (T - 1)`` plus, per axis, a smooth wobble ``wobble_nm * (sin(2 pi f t + phi) - sin(phi))``
    with ``t = k / (T - 1)``, ``f`` uniform in ``[0.5, 1.5] * wobble_cycles`` and ``phi`` uniform, drawn from
    ``seed`` (its own random numbers: the movie's emitters and noise are those of the same movie without drift).
    Frame 0 has no drift. All zero (the default): no drift, the movie as before."""

    linear_nm: Vec3 = Field(default=(0.0, 0.0, 0.0), description="drift at the last frame (nm, x y z), linear in time")
    # finite: a NaN or inf drift failed deep inside the camera ('invalid Poisson rate')
    wobble_nm: tuple[_FiniteNonNeg, _FiniteNonNeg, _FiniteNonNeg] = Field(
        default=(0.0, 0.0, 0.0), description="amplitude of a smooth random (sine) wobble per axis (nm)")
    wobble_cycles: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        default=1.0, description="about how many periods the wobble makes over the movie (each axis: 0.5-1.5x this)")
    seed: Annotated[int, Field(ge=0)] = 0

    @property
    def active(self) -> bool:
        return any(v != 0 for v in (*self.linear_nm, *self.wobble_nm))


class EmitterConfig(_Model):
    """Emitters uniform in the field of view and ``z_range_nm``; blinking with exponential on-time, or (``blinking:
    false``) each emitter on for exactly one whole frame with its full flux, frames independent (the observation
    model of seed 002's quad-plane benchmark, where every molecule's weight scales a full frame's intensity).

    ``blinks_per_molecule`` (whole movies only: ``plexloc simulate``, :meth:`Simulator.iter_movie
    <plexloc.simulation.simulator.Simulator.iter_movie>`; like ``drift``, never training samples) makes molecules
    that blink several times at the same position, as dyes in dSTORM or PAINT do: the on-events (same density, same
    on-times) are grouped into molecules, each with its own uniform position, ``blinks_per_molecule`` events each on
    average (geometric: every on-event is the molecule's last with probability ``1 / blinks_per_molecule``, as
    photobleaching gives). See :func:`plexloc.simulation.emitters.sample_emitters`."""

    density_per_um2: NonNegFloat = Field(default=1.0, description="active emitters per um^2 per frame")
    photons_range: Range = Field(default=(1000.0, 10000.0), description="uniform flux, photons per frame while on")
    on_time_frames: PositiveFloat = Field(default=2.0, description="mean of the exponential on-time, frames")
    blinking: bool = Field(default=True, description="false: every emitter is on for one whole frame (no "
                           "partial frames, no on-time); on_time_frames is then unused and refused unless the default")
    z_range_nm: Range = (0.0, 0.0)
    drift: MovieDriftConfig = Field(default_factory=MovieDriftConfig,
                                    description="stage drift of a simulated movie (default none)")
    blinks_per_molecule: Annotated[float, Field(ge=1, allow_inf_nan=False)] = Field(
        default=1.0, description="mean number of on-events (blinks) of one molecule over a simulated movie (whole "
        "movies only, never training samples); the events keep the density and on-times above and are grouped into "
        "molecules, each with its own position (and colour), a geometric number of events each. 1 (the default): "
        "every on-event is a molecule of its own, as before. Needs blinking: true")

    @model_validator(mode="after")
    def _blinking(self) -> EmitterConfig:
        # the default passes, so that a dumped configuration (which writes every field) validates again
        default = type(self).model_fields["on_time_frames"].default
        if not self.blinking and "on_time_frames" in self.model_fields_set and self.on_time_frames != default:
            raise ValueError(f"on_time_frames ({self.on_time_frames:g}) has no meaning with blinking: false "
                             "(every emitter is on for one whole frame); leave one of them out")
        if not self.blinking and self.blinks_per_molecule != 1.0:
            raise ValueError(f"blinks_per_molecule ({self.blinks_per_molecule:g}) needs blinking: true (with blinking: "
                             "false every emitter is on for one whole frame, independent of the other frames); leave "
                             "one of them out")
        return self

    _pairs = field_validator("photons_range", "z_range_nm", mode="before")(_range_pair)

    @field_validator("photons_range")
    @classmethod
    def _photons(cls, v: Range) -> Range:
        return _check_range(v, low=0.0)

    @field_validator("z_range_nm")
    @classmethod
    def _z(cls, v: Range) -> Range:
        return _check_range(v)


class BackgroundConfig(_Model):
    """Background per frame: a level uniform in ``range`` (photons/px/frame), optionally modulated by a
    smooth random spatial field of relative amplitude ``variation`` and length scale ``variation_scale_nm``."""

    range: Range = (20.0, 200.0)
    variation: float = Field(default=0.0, ge=0, lt=1)
    variation_scale_nm: PositiveFloat = 3000.0

    _pair = field_validator("range", mode="before")(_range_pair)

    @field_validator("range")
    @classmethod
    def _range(cls, v: Range) -> Range:
        return _check_range(v, low=0.0)


# ---------------------------------------------------------------------------------- top level
#: smallest accepted ``px_size_nm``: below it the value is taken for micrometres typed as nanometres
MIN_PX_SIZE_NM = 20.0


#: the fields of a section that shape every simulated movie (:meth:`SimulationConfig.defaulted_fields`)
_SHAPING_FIELDS = {"emitters": ("density_per_um2", "photons_range", "on_time_frames"), "background": ("range",)}


class SimulationConfig(_Model):
    """Everything the simulator needs: frame geometry, channels, photon model, emitters, background.

    ``px_size_nm`` (the camera pixel in the sample) must be at least ``MIN_PX_SIZE_NM`` (20 nm)."""

    px_size_nm: PositiveFloat | tuple[PositiveFloat, PositiveFloat] = 100.0
    frame_size: tuple[Annotated[int, Field(ge=MIN_FRAME_PX)], Annotated[int, Field(ge=MIN_FRAME_PX)]] = (64, 64)
    chip_size_px: tuple[Annotated[int, Field(ge=MIN_FRAME_PX)], Annotated[int, Field(ge=MIN_FRAME_PX)]] | None = Field(
        default=None,
        description="camera chip (H, W) in pixels; channel transforms are in chip coordinates. Training samples "
        "the ROI's position over the chip, so a multi-channel model fits any ROI. Default: frame_size",
    )
    roi_offset_px: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]] = Field(
        default=(0, 0), description="(x, y) pixel of the chip at the simulated frame's corner"
    )
    split_view: SplitViewConfig | None = Field(
        default=None, description="the channels' boxes on one camera frame, when the movie is a single split-view TIFF"
    )
    channels: list[ChannelConfig] = Field(min_length=1)
    photon_model: PhotonModelConfig = Field(default_factory=PhotonModelConfig)
    emitters: EmitterConfig = Field(default_factory=EmitterConfig)
    background: BackgroundConfig = Field(default_factory=BackgroundConfig)

    _frames = field_validator("frame_size", "chip_size_px", mode="before")(_frame_pair)

    @field_validator("px_size_nm")
    @classmethod
    def _px_size(cls, value):
        """Pixel sizes below ``MIN_PX_SIZE_NM`` are refused: 0.1 (µm typed as nm) simulated 0 emitters silently."""
        small = [p for p in ((value,) if isinstance(value, (int, float)) else value) if p < MIN_PX_SIZE_NM]
        if small:
            p = small[0]
            raise ValueError(f"is a camera pixel's size in the sample, in nm (typically 60-200); {p:g} nm is below "
                             f"{MIN_PX_SIZE_NM:g} nm: was it given in µm ({p:g} µm = {1000 * p:g} nm)?")
        return value

    @model_validator(mode="before")
    @classmethod
    def _single_channel_shortcut(cls, data):
        if isinstance(data, dict) and ("psf" in data or "camera" in data):
            if "channels" in data:
                raise ValueError("give either 'channels' or top-level 'psf' and 'camera', not both")
            data = dict(data)
            channel = {"psf": data.pop("psf", None), "camera": data.pop("camera", None)}
            missing = [k for k, v in channel.items() if v is None]
            if missing:
                raise ValueError(f"single-channel config needs both 'psf' and 'camera'; missing {missing}")
            data["channels"] = [channel]
        elif isinstance(data, dict) and "channels" not in data:  # pydantic said "missing field 'channels'" alone
            raise ValueError("no channel: give 'psf' and 'camera' (one channel) or 'channels' (a list of channels, each "
                             "with its psf and camera); `plexloc examples` lists complete configurations")
        return data

    @model_validator(mode="after")
    def _check_channels(self) -> SimulationConfig:
        n = len(self.channels)
        cpr = self.photon_model.channel_photons_range
        if cpr is not None and len(cpr) != n:
            raise ValueError(f"photon_model.channel_photons_range has {len(cpr)} ranges, expected one per channel ({n})")
        if not self.emitters.blinking and self.photon_model.on_time_frames is not None:
            raise ValueError("photon_model.on_time_frames (per-colour on-times) needs emitters.blinking: true")
        if self.photon_model.kind == "ratiometric" and self.photon_model.ratios:
            if len(self.photon_model.ratios[0]) != n:
                raise ValueError(f"photon_model.ratios rows have {len(self.photon_model.ratios[0])} entries, expected one per channel ({n})")
        self._warn_far_transforms()
        return self

    def _warn_far_transforms(self) -> None:
        """Warn (:class:`TransformWarning`) about a channel transform whose linear part L has an entry of
        ``|L - I|`` above ``MAX_LINEAR_DEVIATION``: channel transforms stay close to the identity once the
        pixel-preserving crops and flips are applied (conventions.md); a mirror or a 90-degree rotation belongs
        in ``split_view.flip``. A warning, not an error: channels on separate cameras have no flip setting."""
        for c, ch in enumerate(self.channels):
            t = ch.transform
            w = t[2][2]
            dev = max(abs(t[i][j] / w - (1.0 if i == j else 0.0)) for i in range(2) for j in range(2))
            if dev > MAX_LINEAR_DEVIATION:
                warnings.warn(
                    f"channels.{c}.transform {t}: its linear part is far from the identity (an entry of |L - I| is "
                    f"{dev:.3g} > {MAX_LINEAR_DEVIATION}); a mirror or 90-degree rotation belongs in split_view.flip "
                    "(conventions.md), and the transform should then be close to the identity",
                    TransformWarning, stacklevel=2)

    @model_validator(mode="after")
    def _check_split(self) -> SimulationConfig:
        if self.split_view is not None and len(self.split_view.boxes) != len(self.channels):
            raise ValueError(f"split_view has {len(self.split_view.boxes)} boxes for {len(self.channels)} channels")
        return self

    @model_validator(mode="after")
    def _check_chip(self) -> SimulationConfig:
        if self.chip_size_px is not None:
            h, w = self.chip_size_px
            if h < self.frame_size[0] + self.roi_offset_px[1] or w < self.frame_size[1] + self.roi_offset_px[0]:
                raise ValueError(
                    f"chip_size_px {list(self.chip_size_px)} is smaller than frame_size {list(self.frame_size)} "
                    f"placed at roi_offset_px {list(self.roi_offset_px)}"
                )
        return self

    def defaulted_fields(self, *, given=()) -> dict[str, object]:
        """The emitter and background fields that shape a simulated movie and that this configuration leaves to
        plexloc's defaults, ``{"emitters.density_per_um2": 1.0, ...}`` (empty where the file gives them all).

        Read from the fields set when the configuration was validated: a configuration built from another's
        ``model_dump()`` sets every field and has none. ``given``: emitter field names set elsewhere (``plexloc
        simulate --density``: ``("density_per_um2",)``). A field the movie does not use is left out: ``background.range``
        where every channel has its own background (a channel's own without a ``range`` is named with the channel),
        ``emitters.on_time_frames`` without blinking or where each dye has its own (ratiometric
        ``photon_model.on_time_frames``), ``emitters.photons_range`` where each channel has its own (independent
        ``photon_model.channel_photons_range``). ``emitters.z_range_nm`` is named where a channel's PSF is 3D
        (astigmatic, spline): its default [0, 0] puts every emitter in focus."""
        pm = self.photon_model
        unused = set(given)
        if not self.emitters.blinking or (pm.kind == "ratiometric" and pm.on_time_frames is not None):
            unused.add("on_time_frames")
        if pm.kind == "independent" and pm.channel_photons_range is not None:
            unused.add("photons_range")
        if all(ch.background is not None for ch in self.channels):
            unused.add("range")  # background's: no channel takes the top level's
        out: dict[str, object] = {}
        for section, names in _SHAPING_FIELDS.items():
            model = getattr(self, section)
            for name in names:
                if name not in unused and name not in model.model_fields_set:
                    out[f"{section}.{name}"] = getattr(model, name)
        if "z_range_nm" not in self.emitters.model_fields_set and any(ch.psf.kind != "gaussian" for ch in self.channels):
            out["emitters.z_range_nm"] = self.emitters.z_range_nm
        for c, ch in enumerate(self.channels):
            if ch.background is not None and "range" not in ch.background.model_fields_set:
                out[f"channels.{c}.background.range"] = ch.background.range
        return out

    @property
    def px_size_xy_nm(self) -> tuple[float, float]:
        """Pixel size (x, y) in nm."""
        p = self.px_size_nm
        return (float(p), float(p)) if isinstance(p, (int, float)) else (float(p[0]), float(p[1]))

    @property
    def n_channels(self) -> int:
        return len(self.channels)
