"""``plexloc color LOCS --out OUT [--ratios R00 R01 --ratios R10 R11 ...] [--threshold 0.9] [--figure PNG]``.

Without ``sigma_photons_ch*`` the per-channel photon noise is shot noise times ``--excess-noise``: 2 for an EMCCD, 1
otherwise. A table does not say its camera: ``--camera`` (a camera YAML, or the configuration: its channels' cameras)
does, and an EMCCD there makes the default 2 (said on the output); an explicit ``--excess-noise`` is kept."""

from __future__ import annotations

import argparse
from pathlib import Path

from plexloc.cli._common import (float_at_least, nonnegative_float, open_probability, path_with_suffix, positive_int,
                                 probability)
from plexloc.cli._locs import add_table_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "color",
        help="assign colours from per-channel photons (ratiometric multi-colour, DECODE-Plex eq. 3)",
        description="Probability of each colour from the per-channel photons (photons_ch0, ...) and their "
        "uncertainties (sigma_photons_ch*, else shot noise + background) given the fraction of each dye's photons "
        "per channel; writes color (-1 below --threshold) and color_prob. Without --ratios the ratios are "
        "estimated by a Gaussian mixture fit of the observed photon fractions (components ordered by descending "
        "fraction in channel 0).",
    )
    add_table_args(p, out_help="table with color and color_prob")
    p.add_argument("--ratios", type=nonnegative_float, nargs="+", action="append", default=None, metavar="R",
                   help="one colour's fraction of photons per channel; repeat once per colour")
    p.add_argument("--colors", type=positive_int, default=2, metavar="K",
                   help="colours to estimate without --ratios, >= 2 (default 2)")
    p.add_argument("--threshold", type=probability, default=0.9, metavar="P",
                   help="reject below this probability, in [0, 1] (default 0.9)")
    p.add_argument("--min-photons", type=nonnegative_float, default=0.0, metavar="N",
                   help="photons summed over channels below which rows are left out of the ratio estimate (default 0: "
                   "every row with a positive total)")
    p.add_argument("--excess-noise", type=float_at_least(1.0), default=None, metavar="F",
                   help="noise factor (>= 1) of the photon variance estimate without sigma_photons_ch* (default: 2 "
                   "where --camera is an EMCCD, 2 - 1/G below EM gain 100, else 1)")
    p.add_argument("--config", type=Path, default=None, metavar="YAML",
                   help="the configuration the table was fitted with: its photon_model's ratios (ratiometric) serve as "
                   "--ratios where those are not given, numbering the colours as it does, and its cameras as --camera; "
                   "a table whose photon fractions fit them only with the channels swapped is warned about (split-view "
                   "boxes or channel movies given in the wrong order)")
    p.add_argument("--camera", type=Path, default=None, metavar="YAML",
                   help="the data's camera: a camera YAML, or the configuration (its channels' cameras); an EMCCD makes "
                   "--excess-noise default to its excess-noise factor squared (2 from EM gain 100)")
    p.add_argument("--reject-misfit", type=open_probability, default=None, metavar="ALPHA",
                   help="also reject (color -1) rows whose per-channel photons fit none of the ratios: chi-square "
                   "p-value of the best colour below ALPHA, in (0, 1), after scaling by the table's own noise scale (e.g. "
                   "1e-3; two emitters of different dyes fitted as one get color_prob near 1 otherwise)")
    p.add_argument("--reject-mixed", type=open_probability, default=None, metavar="PRIOR",
                   help="also weigh the hypothesis that a row is two emitters of different dyes fitted as one (its photon "
                   "fractions between two dyes'), with this prior probability in (0, 1) (e.g. 0.01): color_prob becomes "
                   "eq. 3's times 1 - P(mixed), and such rows fall below --threshold (eq. 3 alone gives them "
                   "color_prob near 1)")
    p.add_argument("--no-noise-scale", dest="noise_scale", action="store_false",
                   help="take the photon uncertainties as given in eq. 3 (default: its chi-squares are divided by the "
                   "table's own noise scale, the rows' misfit to their colour's ratio against the uncertainties, as "
                   "--reject-misfit and --reject-mixed do: predicted sigmas too small gave color_prob near 1 to "
                   "wrong colours)")
    p.add_argument("--detection-limit", type=nonnegative_float, nargs="+", default=None, metavar="N",
                   help="for a channel-by-channel merge (n_channels_seen): photons below which each channel misses a "
                   "spot, one per channel (default: 10 times the background noise under a spot, from bg_chN); a "
                   "channel that missed a molecule is taken as having received fewer, not 0")
    p.add_argument("--figure", type=path_with_suffix(".png"), default=None, metavar="PNG",
                   help="histogram of the photon fraction with r_k (.png)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="counts and ratios as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    import warnings
    from contextlib import ExitStack

    from plexloc.cli import _locs
    from plexloc.cli._common import check_outputs, write_json
    from plexloc.errors import InputError
    from plexloc.io._atomic import atomic_path
    from plexloc.post.color import (MAX_REJECTED_SHARE, ColorSeparationWarning, assign_colors, estimate_ratios,
                                    photon_fractions, photon_matrix, ratio_figure, separation_problem)

    if args.ratios is None and args.colors < 2:  # it failed after printing an estimate of the one ratio
        raise InputError(f"--colors {args.colors}: colour assignment needs >= 2 colours")
    if args.reject_mixed is not None and not 0.0 < args.reject_mixed < 1.0:  # (open_probability admits 1)
        raise InputError(f"--reject-mixed {args.reject_mixed:g}: give a prior probability in (0, 1) (e.g. 0.01)")
    if args.reject_misfit is not None and args.reject_misfit >= 1.0:  # (open_probability admits 1: rejects all)
        raise InputError(f"--reject-misfit {args.reject_misfit:g}: give a false-rejection level below 1 (e.g. 1e-3)")
    check_outputs(args.figure, args.json, table=args.out, px_size_nm=args.camera_px_size)
    from_config, config_channels = _config_ratios(args)
    _excess_noise(args)
    table = _locs.read(args)
    try:  # a table without photons_ch0, photons_ch1, ...: the message names the file
        n_channels = photon_matrix(table, excess_noise=args.excess_noise)[0].shape[1]
    except InputError as err:
        raise InputError(str(err), source=args.locs) from None
    if config_channels is not None and config_channels != n_channels:  # its cameras and ratios are another setup's
        cols = ", ".join(f"photons_ch{c}" for c in range(n_channels))
        raise InputError(f"--config {args.config} has {config_channels} channel(s), the table {n_channels} ({cols}): "
                         "the table was not fitted with this configuration; give the one it was, or --camera and "
                         "--ratios instead", source=args.locs)
    fit = None
    ratios = args.ratios
    if ratios is None:
        try:  # too few rows: the message names the file
            fit = estimate_ratios(table, args.colors, min_photons=args.min_photons, excess_noise=args.excess_noise)
        except InputError as err:
            raise InputError(f"{err} (give the known ratios with --ratios)", source=args.locs) from None
        ratios = fit.ratios
        print("estimated ratios (fraction per channel): "
              + "; ".join(" ".join(f"{v:.4f}" for v in r) for r in ratios))
        problem = separation_problem(fit)
        if problem is not None:
            warnings.warn(f"{args.locs}: {problem}", ColorSeparationWarning, stacklevel=2)
    else:
        _check_given_ratios(table, ratios, args)  # refuses a row summing above 1 before any estimate
        fit = _compare_with_data(table, ratios, args, from_config)
    fractions = None
    if args.figure is not None and fit is None:  # --ratios on a table too small to estimate them: the histogram
        # with the given ratios alone (estimating them again here failed the command and wrote nothing)
        fractions, _ = photon_fractions(table, min_photons=args.min_photons, excess_noise=args.excess_noise)
    if args.detection_limit is not None and len(args.detection_limit) != n_channels:
        raise InputError(f"--detection-limit {' '.join(f'{v:g}' for v in args.detection_limit)}: give one number of "
                         f"photons per channel of the table ({n_channels})", source=args.locs)
    out, report = assign_colors(table, ratios, args.threshold, excess_noise=args.excess_noise,
                                misfit_alpha=args.reject_misfit, detection_limits=args.detection_limit,
                                mixed_prior=args.reject_mixed, noise_scale=args.noise_scale)
    # rows that a channel missed are rejected where every colour would have been missed alike: the report says so
    rejected = (report.counts.get(-1, 0) - report.n_not_finite - report.n_misfit - report.n_mixed
                - report.n_partial_rejected)
    n_full = report.n - report.n_partial
    if n_full and rejected > MAX_REJECTED_SHARE * n_full:
        warnings.warn(f"{args.locs}: {rejected} of {n_full} rows ({100.0 * rejected / n_full:.1f} %) get no colour "
                      f"(color -1): their most likely colour has a probability below --threshold {args.threshold:g}; "
                      "their per-channel photons fit the ratios "
                      + ("given" if args.ratios is not None else "estimated")
                      + " about equally well (or none of them): check the ratios (--figure draws the photon fractions "
                      "with them) and, for a network's table, its training (color_accuracy in log.csv)",
                      ColorSeparationWarning, stacklevel=2)
    blind = [c for c, v in enumerate(report.detection_limits or []) if v == 0.0]
    if blind and args.detection_limit is None:  # no background known: a channel's miss tells nothing of the colour
        warnings.warn(f"{args.locs}: {report.n_partial} row(s) were seen in only some channels, and the table gives "
                      f"channel(s) {', '.join(map(str, blind))} no background (bg_chN missing or 0), so their detection "
                      "limit is taken as 0 photons and a miss there says nothing of the colour "
                      f"({report.n_partial_rejected} of those rows rejected): give --detection-limit, photons per "
                      "channel below which a channel misses a spot", ColorSeparationWarning, stacklevel=2)
    if report.n_not_finite:
        print(f"plexloc color: warning: {args.locs}: {report.n_not_finite} row(s) with a photon count, sigma or "
              f"background that is not a finite number ({report.not_finite}) get color -1", file=sys.stderr)
    # the figure and the JSON go to temporary files first and take their names only once the table is written: an
    # output that cannot be written leaves none of them (a failing --json left a new table behind, exit status 2)
    with ExitStack() as stack:
        figure = stack.enter_context(atomic_path(args.figure)) if args.figure is not None else None
        json_tmp = stack.enter_context(atomic_path(args.json)) if args.json is not None else None
        if figure is not None:
            ratio_figure(fit, figure, ratios=args.ratios, fractions=fractions)
        if json_tmp is not None:
            write_json(report.to_dict(), json_tmp)
        _locs.write(out, args.out, args)
    print(report.format_table())
    if args.figure is not None:
        print(f"wrote {args.figure}")
    print(f"wrote {args.out}")
    return 0


def _excess_noise(args: argparse.Namespace) -> None:
    """``args.excess_noise`` where it was not given: the EM register's factor where every camera of ``--camera`` is an
    EMCCD (:func:`plexloc.post.color.camera_excess_noise`: 2 from EM gain 100, 2 - 1/G below; said, as the
    table does not record its camera), else 1; cameras of both kinds are refused (one factor cannot serve both)."""
    from plexloc.config.io import load_camera_configs
    from plexloc.errors import InputError
    from plexloc.post.color import camera_excess_noise

    if args.excess_noise is not None:
        return
    if args.camera is None:
        args.excess_noise = 1.0
        return
    cameras = load_camera_configs(args.camera)
    factor = camera_excess_noise(cameras)
    if factor is None:
        kinds = ", ".join(getattr(c, "kind", "?") for c in cameras)
        raise InputError(f"its channels' cameras are of different kinds ({kinds}): give --excess-noise (2 for an "
                         "EMCCD's photons, 1 otherwise)", source=args.camera)
    args.excess_noise = factor
    if factor != 1.0:
        print(f"--excess-noise {factor:g}: {args.camera} is an EMCCD (its excess-noise factor squared at its EM gain; "
              "give --excess-noise to change it)")


def _check_given_ratios(table, ratios, args: argparse.Namespace) -> None:
    """Refuse ``--ratios`` rows of the wrong length or summing above 1 (naming the row) before estimating."""
    from plexloc.post.color import _check_ratios, photon_matrix

    from plexloc.errors import InputError

    n, _, _ = photon_matrix(table, excess_noise=args.excess_noise)
    C = n.shape[1]
    wrong = [k for k, row in enumerate(ratios) if len(row) != C]
    if wrong or len(ratios) < 2:  # the option and the table's channels it was checked against
        cols = ", ".join(f"photons_ch{c}" for c in range(C))
        got = "; ".join(" ".join(f"{v:g}" for v in row) for row in ratios)
        raise InputError(f"--ratios {got}: give --ratios once per colour (at least 2), each with one fraction per "
                         f"channel of the table ({C}: {cols})", source=args.locs)
    try:
        _check_ratios(ratios, C)
    except InputError as err:
        raise InputError(f"--ratios: {err}", source=args.locs) from None


def _compare_with_data(table, ratios, args: argparse.Namespace, given: str | None = None):
    """Estimate the data's own ratios (:func:`~plexloc.post.color.estimate_ratios`, as many colours as ``--ratios``
    rows) and warn (:class:`~plexloc.post.color.RatioMismatchWarning`) where the given ratios have no cluster near
    them or fit better with the channels reordered (:func:`~plexloc.post.color.ratio_mismatch`): ratios given with
    the channels swapped gave 0.92 % colour accuracy without a word. Returns the fit, or ``None`` where the table
    has too few rows to estimate (then nothing is compared)."""
    import warnings

    from plexloc.errors import InputError
    from plexloc.post.color import RatioMismatchWarning, estimate_ratios, ratio_mismatch

    try:
        fit = estimate_ratios(table, len(ratios), min_photons=args.min_photons, excess_noise=args.excess_noise)
    except InputError as err:
        print(f"{given or '--ratios'} not compared with the data: {err}")
        return None
    message = ratio_mismatch(ratios, fit)
    if message is not None:
        warnings.warn(f"{args.locs}: {given or '--ratios'}: {message}", RatioMismatchWarning, stacklevel=2)
    return fit


def _config_ratios(args: argparse.Namespace) -> tuple[str | None, int | None]:
    """With ``--config``: its ratiometric ``photon_model.ratios`` as ``args.ratios`` where ``--ratios`` was not given,
    and the configuration as ``--camera`` where that was not given. Returns the words that name the ratios, for the
    messages (``None`` where ``--ratios`` are the user's own), and the configuration's number of channels (``None``
    without ``--config``), which the table must have. A configuration without dye ratios, or with one colour, is
    refused unless ``--ratios`` are given."""
    from plexloc.config import load_config
    from plexloc.errors import InputError

    if args.config is None:
        return None, None
    cfg = load_config(args.config)
    if args.camera is None:
        args.camera = args.config
    if args.ratios is not None:
        return None, len(cfg.channels)
    model = cfg.photon_model
    if model is None or model.kind != "ratiometric" or not model.ratios:
        kind = model.kind if model is not None else "none (a single channel)"
        raise InputError(f"its photon_model is {kind!r}, not ratiometric: it gives no dye ratios to colour by; give "
                         "--ratios, or no --ratios to estimate them from the table", source=args.config)
    if len(model.ratios) < 2:
        raise InputError(f"its photon_model.ratios name {len(model.ratios)} colour: colour assignment needs >= 2; "
                         "give --ratios, or no --ratios to estimate them from the table", source=args.config)
    args.ratios = [list(map(float, row)) for row in model.ratios]
    return f"{args.config}'s photon_model.ratios", len(cfg.channels)
