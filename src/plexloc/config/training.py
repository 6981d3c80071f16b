"""Typed configuration of the network and its training.

A training configuration is a simulation configuration (:class:`SimulationConfig`: microscope,
camera, emitters, background; it defines the training data) plus two optional sections, ``model``
and ``training``. A plain simulation YAML is therefore also a valid training configuration, with
the defaults below. ``frame_size`` of the simulation is the training ROI; the network is fully
convolutional and fits movies of any frame size.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from plexloc.config.models import SimulationConfig, _Model

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]

#: the integer fields of the training section (a count of steps or samples, a seed)
_INT_FIELDS = ("batch_size", "steps", "warmup_steps", "lr_patience", "validate_every", "validation_samples", "ema_steps",
               "seed")


def _whole_number(value, info):
    """A count written in exponent notation (``steps: 1e5``, which YAML reads as the text '1e5') is that whole number;
    pydantic said "unable to parse string as an integer". A count with a fraction is refused, saying so. Read exactly
    (a float read a quoted seed '9007199254740993' as ...992 and said "150000.5 is 150000"); true / false, which pydantic
    took as 1 / 0 (``batch_size: yes`` trained on batches of 1), are refused."""
    if isinstance(value, bool):
        raise ValueError(f"takes a whole number (a count), not {str(value).lower()}")
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return value  # pydantic's own message (not a number)
        if not number.is_finite():
            raise ValueError(f"takes a whole number (a count); {value.strip()} is not one")
        if number.adjusted() > 30:
            return value  # pydantic's own message (too large), without building the number
        if number == number.to_integral_value():
            return int(number)
        exact = f"{number.normalize():f}"
        raise ValueError("takes a whole number (a count)" + (f"; {value.strip()} is {exact}" if exact != value.strip() else ""))
    if isinstance(value, float) and math.isfinite(value) and not value.is_integer():
        raise ValueError("takes a whole number (a count)")
    return value


class ModelConfig(_Model):
    """Architecture of the localizer (DECODE family): a frame U-Net per channel shared over the
    temporal window, a union U-Net on the stacked features, per-pixel output heads. ELU activations."""

    window: PositiveInt = Field(default=3, description="consecutive frames seen per prediction (odd)")
    features: PositiveInt = Field(default=48, description="features of the frame U-Net's first stage")
    depth: Annotated[int, Field(ge=1, le=5)] = Field(default=2, description="down/up stages of the frame U-Net")
    union_features: PositiveInt = Field(default=48, description="features of the union U-Net's first stage")
    union_depth: Annotated[int, Field(ge=1, le=5)] = Field(default=2, description="down/up stages of the union U-Net")
    up_kernel: Literal[1, 3] = Field(
        default=3, description="kernel of the convolution after each up-sampling in both U-Nets (DECODE: 1, about a "
        "quarter fewer operations per sample)")
    out_kernel: Literal[1, 3] = Field(default=3, description="kernel of both U-Nets' output convolution (DECODE: 1)")

    @field_validator("window", "features", "depth", "union_features", "union_depth", "up_kernel", "out_kernel",
                     mode="before")
    @classmethod
    def _no_bool(cls, value, info):
        """``window: true`` was read as 1 (pydantic takes true / false for 1 / 0): a one-frame network, silently."""
        if isinstance(value, bool):
            default = cls.model_fields[info.field_name].default
            raise ValueError(f"takes a whole number, not {str(value).lower()}: write a number (default {default}), "
                             "or leave the field out for the default")
        return value

    @field_validator("window")
    @classmethod
    def _odd_window(cls, window: int) -> int:  # a field's check: the error names 'model.window', not 'model'
        if window % 2 == 0:
            raise ValueError("window must be odd (the prediction is for the middle frame)")
        return window


class TrainingConfig(_Model):
    """On-the-fly training: every sample is simulated on the training device and used once."""

    batch_size: PositiveInt = 32
    steps: PositiveInt = Field(default=30000, description="optimizer steps (the CLI's --steps/--minutes override)")
    lr: Annotated[float, Field(gt=0)] = Field(default=4e-4, description="AdamW learning rate")
    weight_decay: Annotated[float, Field(ge=0)] = 0.01
    warmup_steps: Annotated[int, Field(ge=0)] = Field(default=200, description="linear learning-rate warm-up")
    # .inf (no clipping) as before session 50, whose allow_inf_nan=False refused it; NaN stays refused (gt=0)
    grad_clip: Annotated[float, Field(gt=0, allow_inf_nan=True)] = Field(
        default=1.0, description="gradient norm clipping: the largest gradient norm a step applies (.inf: none)")
    lr_factor: Annotated[float, Field(gt=0, lt=1)] = Field(default=0.5, description="learning-rate decay on plateau")
    lr_patience: PositiveInt = Field(
        default=5, description="validations without improvement tolerated: the next one (lr_patience + 1 in a row; "
        "an improvement is a relative drop of the validation loss by more than 1e-4) multiplies the rate by lr_factor")
    min_lr: Annotated[float, Field(ge=0)] = 1e-6
    lr_schedule: Literal["plateau", "cosine"] = Field(
        default="plateau",
        description="plateau: multiply the rate by lr_factor after lr_patience validations without improvement; "
        "cosine: anneal from lr to min_lr over the budget of a training call (its --steps or --minutes), "
        "for runs of a known length and for a fine-tuning phase resumed with a new --lr; a plain --resume "
        "continues the phase it was in, stretched to end with the call where its target lies beyond the phase",
    )
    min_target_photons: Annotated[float, Field(ge=0)] = Field(
        default=100.0, description="emitters dimmer than this (all channels) are simulated but are not targets"
    )
    validate_every: PositiveInt = Field(default=500, description="steps between validations and checkpoints")
    validate_every_s: Annotated[float, Field(gt=0)] | None = Field(
        default=None,
        description="also validate once this many seconds of training have passed since the last validation "
        "(a learning curve with enough points whatever the device's speed)",
    )
    validation_samples: PositiveInt = Field(default=512, description="size of the fixed simulated validation set")
    detection_threshold: Annotated[float, Field(gt=0, lt=1)] = Field(
        default=0.5, description="integrated probability above which a localization is extracted"
    )
    margin_px: Annotated[float, Field(ge=0)] | None = Field(
        default=None,
        description="emitters are also simulated this far outside the training ROI (not targets: they light its "
        "edges, as in a real movie); default: half the PSF patch, plus for several channels the largest channel "
        "shift over the chip",
    )
    transform_jitter_nm: Annotated[float, Field(ge=0)] = Field(
        default=0.0, description="registration jitter: sd of a random shift of each non-reference channel per sample"
    )
    density_range_per_um2: tuple[PositiveFloat, PositiveFloat] | None = Field(
        default=None,
        description="each training sample's emitter density drawn log-uniformly from [lo, hi] per um^2 (sparse and "
        "crowded samples in every batch) instead of emitters.density_per_um2; the validation set keeps "
        "emitters.density_per_um2. Default: the one density",
    )
    photon_range_widen: Annotated[float, Field(ge=1)] = Field(
        default=2.0,
        description="multi-colour (ratiometric) training: each channel's photon range [lo, hi] taken from the dyes "
        "becomes [lo / f, hi * f], so that no dye's count sits at an end of its channel's training range "
        "(1: the dyes' own ranges; 2 kept AF647/CF680's colours from degrading with training, bench/RESULTS.md)",
    )
    ema_steps: Annotated[int, Field(ge=0)] = Field(
        default=200,
        description="validate and save an exponential moving average of the weights instead of the last step's "
        "weights, whose global position offset jitters by several nm from step to step: decay "
        "min(1 - 1/ema_steps, (1 + step) / (10 + step)), an average over about the last ema_steps steps from step "
        "9 * ema_steps - 10 on (1,790 for 200), over about the last tenth of the steps before (its mean lag is "
        "step / 10), the steps counted from the run's start or from a --resume with a new schedule (a fine-tuning "
        "phase averages its own weights); 0: the last step's weights",
    )
    amp: bool = Field(default=True, description="bfloat16 mixed precision on CUDA, and on a CPU with AVX512-BF16 "
                      "instructions (elsewhere on the CPU float32): 1.3-1.4x the steps per second of float32 on a 2-core "
                      "Zen 4 CPU for 16-feature models, as accurate at equal steps within 0.5 points of efficiency")
    compile: bool = Field(default=False, description="torch.compile the network on CUDA")
    channels_last: bool | None = Field(
        default=None,
        description="keep the network's weights and activations in the channels-last (NHWC) memory format, "
        "the layout that cuDNN's bf16 convolutions prefer (whether it is faster on a given GPU: bench/throughput.py "
        "--channels-last); same results either way. None (default): on a CPU where oneDNN runs it (1.1-1.15x the "
        "steps per second of NCHW on a 2-core Zen 4 CPU with bfloat16), not on CUDA",
    )
    seed: int = 0

    _counts = field_validator(*_INT_FIELDS, mode="before")(_whole_number)

    @field_validator("validate_every_s", mode="before")
    @classmethod
    def _never_is_null(cls, value):
        """``.inf`` for "never by time" was refused as "Input should be a finite number": null is the way to say it."""
        if isinstance(value, float) and math.isinf(value) and value > 0:
            raise ValueError("is the seconds of training between validations by time; for none, write null or leave it "
                             "out (validations then come every training.validate_every steps)")
        return value

    @field_validator("grad_clip", mode="before")
    @classmethod
    def _clip_null(cls, value):
        if value is None:  # pydantic: "Input should be a valid number"
            raise ValueError("is the largest gradient norm a step applies, a number > 0 (default 1); for no clipping "
                             "write .inf")
        return value

    @field_validator("density_range_per_um2", mode="before")
    @classmethod
    def _density_pair(cls, value):
        if isinstance(value, (int, float)) and not isinstance(value, bool):  # pydantic: "Input should be a valid tuple"
            raise ValueError(f"is a range [lo, hi] of emitters per µm², two numbers; for the one density {value:g} "
                             f"leave it out and write emitters.density_per_um2: {value:g} (or [{value:g}, {value:g}])")
        return value

    @field_validator("detection_threshold", mode="before")
    @classmethod
    def _threshold_fraction(cls, value):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 1 < value < 100:
            raise ValueError(f"is a probability between 0 and 1, not a percentage: for {value:g} % write "
                             f"{value / 100:g}")
        if value in (1, 100) and not isinstance(value, bool):  # "for 100 % write 1" advised a value refused in turn
            raise ValueError("is a probability above 0 and below 1 (default 0.5): a threshold of 1 or 100 % would "
                             "extract nothing")
        return value

    @model_validator(mode="after")
    def _density_range_order(self) -> TrainingConfig:
        r = self.density_range_per_um2
        if r is not None and r[0] > r[1]:
            raise ValueError(f"density_range_per_um2 must be [lo, hi] with lo <= hi, got {list(r)}")
        return self


class TrainConfig(SimulationConfig):
    """A simulation configuration plus the ``model`` and ``training`` sections."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)

    def simulation(self) -> SimulationConfig:
        """The simulation part alone."""
        return SimulationConfig.model_validate(self.model_dump(exclude={"model", "training"}))
