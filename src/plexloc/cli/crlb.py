"""``plexloc crlb CONFIG --photons N --bg B [--z Z] [--json OUT]``."""

from __future__ import annotations

import argparse
from pathlib import Path


from plexloc.cli._common import finite_float, nonnegative_float, nonnegative_int, write_json


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
        "Fisher information of the configured PSF(s) and camera(s) (EMCCD: excess-noise factor 2). With "
        "several channels the bound is joint: --photons is the emitter's total over the channels (the truth "
        "tables' photons column), which 'linked' splits in proportion to the throughputs and 'ratiometric' to "
        "the ratios of --color (as the simulator does); 'independent' gives every channel the full --photons.",
    )
    p.add_argument("config", type=Path, help="simulation configuration (YAML)")
    # --photons <= 0 is an InputError of run() (exit code 2 returned, not raised); NaN and inf are refused here
    p.add_argument("--photons", type=finite_float, required=True, help="photons of the emitter (all channels), > 0")
    p.add_argument("--bg", type=nonnegative_float, required=True, help="background photons per pixel, >= 0")
    p.add_argument("--z", type=_floats, default=[0.0], help="z in nm, or a comma-separated list (default 0)")
    p.add_argument("--color", type=nonnegative_int, default=0,
                   help="colour index (from 0) for a ratiometric configuration (default 0)")
    p.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from plexloc.config import load_config
    from plexloc.errors import InputError
    from plexloc.evaluate.crlb import crlb
    from plexloc.simulation import Simulator

    if args.photons <= 0:
        raise InputError(f"--photons must be > 0, got {args.photons}")
    if args.bg < 0:
        raise InputError(f"--bg must be >= 0, got {args.bg}")
    config = load_config(args.config)
    sim = Simulator(config)
    pm = config.photon_model
    # --photons is the emitter's total over the channels, as the truth tables' photons column: each channel gets
    # its share (throughputs, or the colour's ratios, normalised by their sum, as the simulator splits them)
    if pm.kind == "linked":
        fractions = [ch.throughput for ch in sim.channels]
    elif pm.kind == "ratiometric":
        if not 0 <= args.color < pm.n_colors:
            raise InputError(f"--color must be in [0, {pm.n_colors - 1}], got {args.color}")
        fractions = list(pm.ratios[args.color])
    else:
        fractions = [1.0] * sim.n_channels
    if pm.kind in ("linked", "ratiometric"):
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
        photons=args.photons,
        bg=args.bg,
        transforms=[ch.transform for ch in sim.channels],
        z_offsets_nm=[ch.z_offset_nm for ch in sim.channels],
        photon_fractions=fractions,
    )
    keys = ["crlb_x_nm", "crlb_y_nm", "crlb_z_nm", "crlb_photons", "crlb_bg"]
    print(f"{'z_nm':>8}" + "".join(f"{k:>14}" for k in keys))
    for i, zi in enumerate(args.z):
        print(f"{zi:>8.1f}" + "".join(f"{float(result[k][i]):>14.3f}" for k in keys))
    if args.json is not None:
        single = len(args.z) == 1
        data = {k: (float(result[k][0]) if single else [float(v) for v in result[k]]) for k in keys}
        data.update(z_nm=args.z[0] if single else args.z, photons=args.photons, bg=args.bg)
        write_json(data, args.json)
    return 0
