"""``plexloc crlb CONFIG --photons N --bg B [--z Z] [--json OUT]``."""

from __future__ import annotations

import argparse
from pathlib import Path


from plexloc.cli._common import (
    add_config_argument, check_outputs, finite_float, nonnegative_float, nonnegative_int, resolve_config, write_json,
)


def _floats(text: str) -> list[float]:
    try:
        values = [finite_float(v.strip()) for v in text.split(",") if v.strip()]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a finite number or comma-separated finite numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected a number or comma-separated numbers, got {text!r}")
    return values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "crlb",
        help="Cramer-Rao lower bound of the configured PSF and camera",
        description="Cramer-Rao lower bound (1 sigma) of x, y, z and photons for a single emitter, from the "
        "Fisher information of the configured PSF(s) and camera(s) (EMCCD: excess-noise factor 2; an sCMOS with "
        "per-pixel maps: the maps' median pixel; a spline PSF: z within its calibrated range). With "
        "several channels the bound is joint: --photons is the emitter's total over the channels (the truth "
        "tables' photons column), which 'linked' splits in proportion to the throughputs and 'ratiometric' to "
        "the ratios of --color (as the simulator does). 'independent' (each channel's photons their own, as a "
        "multi-colour network estimates them): --photons gives each channel's photons, one value for all or one "
        "per channel (e.g. 865,4135), and the bound has a photon and a background parameter per channel "
        "(crlb_photons_chN, crlb_bg_chN; crlb_photons is then the bound of their sum).",
    )
    add_config_argument(p, "simulation configuration (YAML)")
    # --photons <= 0 is an InputError of run() (exit code 2 returned, not raised); NaN and inf are refused here
    p.add_argument("--photons", type=_floats, required=True,
                   help="photons of the emitter (all channels), > 0; 'independent': per channel, one value or a "
                   "comma-separated value per channel")
    p.add_argument("--bg", type=nonnegative_float, required=True, help="background photons per pixel, >= 0")
    p.add_argument("--z", type=_floats, default=[0.0], help="z in nm, or a comma-separated list (default 0)")
    p.add_argument("--color", type=nonnegative_int, default=0,
                   help="colour index (from 0) for a ratiometric configuration (default 0)")
    p.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    resolve_config(args)
    import torch

    from plexloc.config import load_config
    from plexloc.errors import InputError
    from plexloc.evaluate.crlb import crlb
    from plexloc.simulation import Simulator

    check_outputs(args.json)
    if any(v <= 0 for v in args.photons):
        raise InputError(f"--photons must be > 0, got {','.join(f'{v:g}' for v in args.photons)}")
    if args.bg < 0:
        raise InputError(f"--bg must be >= 0, got {args.bg}")
    config = load_config(args.config)
    sim = Simulator(config)
    check_z_in_psf_range(args.z, sim, config, source=args.config)
    pm = config.photon_model
    independent = pm.kind == "independent" and sim.n_channels > 1
    if len(args.photons) != 1 and not (independent and len(args.photons) == sim.n_channels):
        want = f"one value or {sim.n_channels} (one per channel)" if independent else "one value (the emitter's total)"
        raise InputError(f"--photons: {len(args.photons)} values for a '{pm.kind}' configuration with "
                         f"{sim.n_channels} channel(s); give {want}", source=args.config)
    # --photons is the emitter's total over the channels, as the truth tables' photons column: each channel gets
    # its share (throughputs, or the colour's ratios, normalised by their sum, as the simulator splits them)
    if pm.kind == "linked":
        fractions = [ch.throughput for ch in sim.channels]
    elif pm.kind == "ratiometric":
        if not 0 <= args.color < pm.n_colors:
            raise InputError(f"--color must be in [0, {pm.n_colors - 1}], got {args.color}")
        fractions = list(pm.ratios[args.color])
    else:  # independent: each channel its own count; the bound's photons are their total, split by them
        fractions = fractions_photons(args.photons, sim.n_channels)
    total = sum(fractions) if pm.kind == "independent" else args.photons[0]
    fractions = [f / sum(fractions) for f in fractions]
    z = torch.tensor(args.z, dtype=torch.float64)
    ref = sim.channels[0].psf
    x0 = (ref.roi_px[1] + 0.5) * ref.px_size_nm[0]  # a pixel centre well inside a virtual frame
    y0 = (ref.roi_px[0] + 0.5) * ref.px_size_nm[1]
    result = crlb(
        [(ch.psf, ch.camera) for ch in sim.channels],
        x_nm=x0,
        y_nm=y0,
        z_nm=z,
        photons=total,
        bg=args.bg,
        transforms=[ch.transform for ch in sim.channels],
        z_offsets_nm=[ch.z_offset_nm for ch in sim.channels],
        photon_fractions=fractions,
        photons_per_channel=independent,
        bg_per_channel=independent,
    )
    keys = ["crlb_x_nm", "crlb_y_nm", "crlb_z_nm", "crlb_photons"]
    if independent:
        keys += [f"crlb_photons_ch{c}" for c in range(sim.n_channels)] + [f"crlb_bg_ch{c}" for c in range(sim.n_channels)]
    else:
        keys.append("crlb_bg")
    width = max(14, *(len(k) + 2 for k in keys))
    print(f"{'z_nm':>8}" + "".join(f"{k:>{width}}" for k in keys))
    for i, zi in enumerate(args.z):
        print(f"{zi:>8.1f}" + "".join(f"{float(result[k][i]):>{width}.3f}" for k in keys))
    if args.json is not None:
        single = len(args.z) == 1
        data = {k: (float(result[k][0]) if single else [float(v) for v in result[k]]) for k in keys}
        photons = fractions_photons(args.photons, sim.n_channels) if independent else args.photons[0]
        data.update(z_nm=args.z[0] if single else args.z, photons=photons, bg=args.bg)
        write_json(data, args.json)
    return 0


def fractions_photons(photons: list[float], n_channels: int) -> list[float]:
    """Each channel's photons from --photons: one value for every channel, or one per channel."""
    return list(photons) * n_channels if len(photons) == 1 else list(photons)


def check_z_in_psf_range(z_nm: list[float], sim, config, *, source=None) -> None:
    """Every ``--z`` within each channel's PSF model (a calibrated spline's z range, shifted by the channel's z
    offset): an :class:`~plexloc.errors.InputError` naming the values, the channel, its range and calibration file
    (outside it the spline is flat, and the bound of z read ``inf`` in a table of numbers, with no word)."""
    from plexloc.errors import InputError
    from plexloc.simulation.simulator import psf_z_range

    for c, ch in enumerate(sim.channels):
        lo, hi, cal = psf_z_range(ch, config.channels[c])
        out = [v for v in z_nm if not lo <= v <= hi]
        if out:
            raise InputError(
                f"--z {','.join(f'{v:g}' for v in out)} nm lies outside channel {c}'s PSF model, calibrated over z "
                f"[{lo:.0f}, {hi:.0f}] nm" + (f" ({cal})" if cal is not None else "")
                + ": it holds no z information there (the bound of z would be infinite); give z within that range",
                source=source)
