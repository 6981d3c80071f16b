"""``plexloc fit MOVIE --model RUN_DIR --out LOCS.csv``: localize a movie with a trained network
(or, with ``--method mle``, with the classical maximum-likelihood fitter)."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plexloc.cli._common import (nonnegative_float, nonnegative_int, open_probability, positive_float, positive_int,
                                 probability, progress, resolve_device)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from plexloc.config.models import SplitViewConfig


def add_fit_method_options(p: argparse.ArgumentParser) -> None:
    """The options of how movies are fitted that ``plexloc fit`` and ``plexloc process`` share: ``--method``,
    ``--model``, ``--config``, ``--camera``, ``--device``, ``--threshold``, the filters, ``--batch-frames``,
    ``--refine-mle``, ``--precision``, ``--split-view`` and ``--roi-offset`` (checked by
    :func:`check_fit_method_options`)."""
    p.add_argument("--method", choices=["network", "mle"], default="network",
                   help="network (default: the trained model of --model) or mle (the classical maximum-likelihood "
                   "fitter, with --config)")
    p.add_argument("--model", type=Path, help="run folder or model file (--method network)")
    p.add_argument("--config", type=Path, help="microscope configuration (--method mle)")
    p.add_argument("--camera", type=Path, action="append",
                   help="camera YAML of the movie (default: the model's training camera); a multi-channel movie: "
                        "one --camera per channel, in channel order, or one configuration holding every channel's camera")
    p.add_argument("--device", default="auto", help="auto (default: cuda where there is one, else cpu), cpu or cuda[:N]")
    p.add_argument("--threshold", type=open_probability, default=None,
                   help="integrated detection probability, in (0, 1] (network; default: the model's "
                        "training.detection_threshold, 0.5 unless set)")
    p.add_argument("--min-prob", type=probability, metavar="P", help="keep localizations with prob >= P (0 <= P <= 1)")
    p.add_argument("--max-sigma", type=positive_float, metavar="NM",
                   help="keep localizations with lateral sigma <= NM (--method mle: their crlb_x_nm, crlb_y_nm)")
    p.add_argument("--min-photons", type=nonnegative_float, metavar="N", help="keep localizations with photons >= N")
    p.add_argument("--max-photons", type=positive_float, metavar="N", help="keep localizations with photons <= N")
    p.add_argument("--batch-frames", type=positive_int, default=None, help="frames per block (default 16): read and held together, each with its temporal window; on a GPU one "
                   "forward pass, on the CPU passes of at most 262,144 output pixels, all channels counted (the memory of the network's "
                   "activations); a block of large frames holds (B + window - 1) x channels x frame pixels x 4 bytes "
                   "(2048 x 2048, one channel, window 3: 300 MB at 16), so a smaller B needs less memory")
    p.add_argument("--refine-mle", action="store_true",
                   help="refine each localization by maximum likelihood in its frame, the other localizations nearby "
                   "modelled (network: worth it where the model's errors are well above the Cramér-Rao bound, e.g. "
                   "molecules on for one frame; refined rows: column refined = 1, sigma = CRLB; --method mle: each "
                   "fit redone with its neighbours' light modelled, for dense movies; refined rows: column refined = 1)")
    p.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto",
                   help="the network's arithmetic (network): auto (default; bfloat16 on a GPU and on a CPU with bfloat16 "
                   "instructions, float32 on other CPUs), float32, or bfloat16. On a CPU with bfloat16 instructions "
                   "(AVX512-BF16, AMX) bfloat16 is 1.6-1.9 times as fast as float32, with slightly different localizations (a trained 2D model: JI, RMSE and z-scores as in float32 "
                   "to within 0.04 points, 0.01 nm and 0.002; up to 0.1 %% of localizations in one table only, positions "
                   "0.12 nm apart in the median); float32 with a warning on other CPUs")
    p.add_argument("--split-view", type=Path, default=None, metavar="CONFIG",
                   help="a configuration (or a YAML file with just a split_view section) whose split_view section cuts "
                   "a split-view movie into the model's channels (boxes [x, y, width, height] and flips); for a model "
                   "trained without split_view, and overriding the model's own. --method mle: replaces the split_view "
                   "of --config")
    p.add_argument("--roi-offset", type=nonnegative_int, nargs=2, default=None, metavar=("X", "Y"),
                   help="chip pixel (x, y) at the reference channel image's corner (multi-channel models and "
                   "configurations); default: the camera ROI recorded in the movie's Micro-Manager metadata, else 0 0 "
                   "(--method mle: else the configuration's roi_offset_px)")


def check_fit_method_options(args: argparse.Namespace, network_only: Sequence[tuple[str, bool]] = ()) -> None:
    """The options of :func:`add_fit_method_options` together: a photon range that keeps something; with
    ``--method mle`` no network option (those of ``network_only``, ``(option, given)``, too) and a ``--config``;
    with the network a ``--model`` and no ``--config``. An :class:`InputError` naming the options."""
    from plexloc.errors import InputError

    if args.min_photons is not None and args.max_photons is not None and args.min_photons > args.max_photons:
        raise InputError(f"--min-photons {args.min_photons:g} is above --max-photons {args.max_photons:g}: nothing "
                         "could pass")
    if args.method == "mle":
        given = [opt for opt, on in (
            ("--model", args.model is not None), ("--threshold", args.threshold is not None),
            ("--batch-frames", args.batch_frames is not None),
            ("--precision", args.precision != "auto"), *network_only,
            ("--min-prob", args.min_prob is not None),  # MLE rows have no detection probability
        ) if on]
        if given:
            raise InputError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to "
                             "--method network only, not to --method mle")
        if args.config is None:
            raise InputError("--method mle needs --config (PSF, camera and pixel size)")
    else:
        if args.model is None:
            raise InputError("--model RUN_DIR is required (or use --method mle --config CONFIG)")
        if args.config is not None:
            raise InputError("--config applies to --method mle only (a network fit takes its configuration from "
                             "--model, the camera from --camera)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="localize a movie (network, or --method mle)",
        description="Localize every frame of a TIFF stack or a folder of TIFFs, streamed in chunks. Frames "
        "larger than --tile pixels are tiled with overlap. Output columns per conventions.md, with predicted "
        "uncertainties (sigma_*), prob and bg.",
    )
    p.add_argument("movie", type=Path, nargs="+",
                   help="the movie: a TIFF stack, or a folder whose TIFFs are one movie's frames in order; for a model "
                   "or configuration of several channels, one movie per channel (ch0 first), or one split-view movie")
    p.add_argument("--out", type=Path, required=True,
                   help="output table (.csv or .h5); written while the movie is fitted (the table is never held whole), "
                   "and put in place only when the fit is complete")
    add_fit_method_options(p)
    p.add_argument("--tile", type=positive_int, default=None, help="tile size in pixels for large frames (default 256); each tile is predicted with the network's "
                   "context (up to 40 px) on every side, so tiles under 16 px warn: --tile 8 took 59-72x and --tile 16 "
                   "19-35x as long as 256 on 128x128 frames of the demo network, with the same localizations")
    p.add_argument("--raw-sigma", action="store_true",
                   help="write the network's own sigmas, positions and photons, without the sigma factors, position "
                   "offset and photon scale measured on the model's validation set")
    p.add_argument("--compile", action="store_true",
                   help="run the network through torch.compile (network; the first batches compile for tens of seconds, "
                   "then each is faster on a GPU: for long movies)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="the network's convolutions in the channels-last (NHWC) layout, which a GPU's bf16 kernels may "
                   "prefer (network; same localizations); default: on a GPU as the model was trained (training.channels_last), "
                   "on a CPU channels-last where oneDNN runs it (1.14-1.48 times as fast there)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fit the movie(s) by the network (``--model``) or by MLE (``--config``). ``--split-view CONFIG``: that file's
    ``split_view`` section cuts one split-view movie into the channels (:func:`load_split_view`); before, a model
    trained without split_view could not fit a split-view movie at all, and its run's config.yaml is not read."""
    _model_file.cache_clear()  # one read per command (main() may run several in one process)
    from plexloc.config import load_camera_configs
    from plexloc.errors import InputError

    from plexloc.io.formats import format_of

    if format_of(args.out) not in ("csv", "h5"):  # plexloc's own table, not another program's format
        raise InputError(f"plexloc fit writes plexloc tables (.csv, .h5); for {format_of(args.out)} write one of "
                         "those and convert it with plexloc convert", source=args.out)
    check_fit_method_options(args, network_only=(
        ("--tile", args.tile is not None), ("--compile", args.compile), ("--raw-sigma", args.raw_sigma),
        ("--channels-last", args.channels_last is not None)))
    device = resolve_device(args.device)
    split_view = load_split_view(args.split_view) if args.split_view is not None else None
    if split_view is not None and len(args.movie) != 1:
        raise InputError(f"--split-view {args.split_view} cuts one split-view movie into the channels, but "
                         f"{len(args.movie)} movies were given")
    camera = None
    if args.camera:
        cameras = [c for path in args.camera for c in load_camera_configs(path)]
        camera = cameras[0] if len(cameras) == 1 else cameras
        if args.method == "network" and args.model is not None:
            _camera_file_pixel_size(args.camera, args.model)
    if args.method == "mle":
        from plexloc.config import load_config
        from plexloc.mle import fit_movie_to_file as fit_mle
        from plexloc.mle.pipeline import check_movie_count

        config = load_config(args.config)
        if split_view is not None:
            config = config.model_copy(update={"split_view": split_view})
        movie = args.movie[0] if len(args.movie) == 1 else [str(m) for m in args.movie]
        check_movie_count(movie, config, source=args.config)  # the error names the configuration's file
        stats = {}
        n_rows = fit_mle(movie, config, args.out, device=device, camera=camera, progress=True, stats=stats,
                         refine_mle=args.refine_mle,
                         filters=dict(min_photons=args.min_photons, max_photons=args.max_photons,
                                      max_sigma_nm=args.max_sigma),  # no predicted sigma: the CRLB
                         roi_offset_px=None if args.roi_offset is None else tuple(args.roi_offset))
        if stats.get("roi_offset_source"):
            print(f"ROI offset {list(stats['roi_offset_px'])} px from {stats['roi_offset_source']}", file=sys.stderr)
        _say_maps_cut(stats)
        # no row leaves silently; the rows kept but flagged (not converged, fits that background alone matches:
        # column p_spot) counted, so that a user can select them out; in process's words (plexloc.mle.pipeline)
        from plexloc.mle.pipeline import dropped_fits_line, not_converged_line, not_significant_line

        filtered = _filtered(args)
        flagged = stats.get("flagged") or {}
        for line in (dropped_fits_line(stats.get("dropped"), stats.get("fits")),
                     not_converged_line(flagged, filtered=filtered, rows=stats.get("rows_fitted"),
                                        z_range_nm=stats.get("z_range_nm")),
                     not_significant_line(flagged["not_significant"], filtered=filtered)
                     if flagged.get("not_significant") else None):
            if line:
                print(line, file=sys.stderr)
        if args.refine_mle and n_rows:
            print(f"refined by maximum likelihood, the neighbours modelled: {stats['refined_rows']} of the fits "
                  "(column refined)", file=sys.stderr)
    else:
        from plexloc.infer import fit_movie_to_file

        stats: dict = {}
        n_rows = fit_movie_to_file(
            [str(m) for m in args.movie] if len(args.movie) > 1 else args.movie[0],
            args.model,
            args.out,
            camera=camera,
            device=device,
            # not given: fit_movie's own defaults (16 frames, 0.5, 256 px)
            **{k: v for k, v in (("batch_frames", args.batch_frames), ("threshold", args.threshold),
                                 ("tile_px", args.tile)) if v is not None},
            filters=dict(min_prob=args.min_prob, max_sigma_nm=args.max_sigma, min_photons=args.min_photons,
                         max_photons=args.max_photons),
            progress=progress,
            stats=stats,
            roi_offset_px=None if args.roi_offset is None else tuple(args.roi_offset),
            split_view=split_view,
            calibrate_sigma=not args.raw_sigma,
            refine_mle=args.refine_mle,
            compile=args.compile,
            channels_last=args.channels_last,
            precision=args.precision,
        )
        if stats.get("sigma_calibration"):
            cal = ", ".join(f"{ax} x{f:.2f}" for ax, f in stats["sigma_calibration"].items())
            print(f"sigmas calibrated on the model's validation set ({cal}; --raw-sigma to skip)", file=sys.stderr)
            if stats.get("legacy_sigma"):
                print("note: the model's sigma calibration was measured before the extraction added the spread of the "
                      "neighbourhood's predictions to the sigmas (2026-12-05), so its sigmas come without it, as "
                      "calibrated; plexloc.train.recalibrate_model(RUN) measures the calibration again with it (sigmas "
                      "of overlapping emitters then grow)", file=sys.stderr)
        if stats.get("offset_calibration"):
            off = ", ".join(f"{ax} {-o:+.1f} nm" for ax, o in stats["offset_calibration"].items())
            print(f"positions corrected by the model's validation offset ({off}; --raw-sigma to skip)", file=sys.stderr)
        if stats.get("photon_calibration"):
            cal = stats["photon_calibration"]
            what = [f"divided by {cal['scale']:.3f}"] if "scale" in cal else []
            what += [f"sigma_photons x{cal['sigma']:.2f}"] if "sigma" in cal else []
            print(f"photons calibrated on the model's validation set ({', '.join(what)}; --raw-sigma to skip)",
                  file=sys.stderr)
        z_edge = stats.get("z_edge")
        if z_edge is not None and z_edge.at_edge:  # a 3D model's rows at its z range's ends: the count, the warning
            print(z_edge.count_line() + (" (before the filters)" if _filtered(args) else ""), file=sys.stderr)
            if z_edge.warning:
                print(f"warning: {z_edge.warning}", file=sys.stderr)
        if args.refine_mle and n_rows:
            share = stats["refined_rows"] / n_rows
            print(f"refined by maximum likelihood: {100 * share:.1f} % of the localizations (column refined)", file=sys.stderr)
            weak = (stats.get("flagged") or {}).get("not_significant")
            if weak:  # as the MLE fit says it
                from plexloc.mle.pipeline import not_significant_line

                print(not_significant_line(weak, refined=True, filtered=_filtered(args)), file=sys.stderr)
        if stats.get("roi_offset_source"):
            print(f"ROI offset {stats['roi_offset_px']} px from {stats['roi_offset_source']}", file=sys.stderr)
        _say_maps_cut(stats)
        if args.roi_offset is not None and not stats.get("roi_offset_source") and not stats.get("camera_maps_cut"):
            print("note: --roi-offset was not used: a one-channel model's positions are relative to the movie frame's "
                  "corner (conventions.md), and its camera has no per-pixel maps to cut", file=sys.stderr)
        if stats.get("checked_rows", n_rows) < n_rows:
            print(f"the duplicate and camera-setting checks looked at {stats['checked_rows']} localizations of random "
                  "frames", file=sys.stderr)
    _say_saturated(stats, args)
    rate = f", {stats['frames_per_s']:.1f} frames/s" if stats.get("frames_per_s") else ""
    if stats.get("precision"):  # the network's arithmetic and layout (bfloat16 / NHWC on a GPU or a bfloat16 CPU)
        rate += f", {stats['precision']}" + (", channels-last" if stats.get("channels_last") else "")
    if stats.get("alignment") is not None:  # its findings were warned about before the fit
        print(stats["alignment"].summary(), file=sys.stderr)
    # the checks' warnings were issued before the fit; their notes (all spots at one z; the noise not measured, too
    # crowded or too dim: the camera settings went unchecked) here, in process's words
    from plexloc.mle.pipeline import check_notes

    for note in check_notes(stats):
        print(f"note: {note}", file=sys.stderr)
    dup = stats.get("duplicates")
    if dup is not None and dup.warning:
        print(f"warning: {dup.warning}", file=sys.stderr)
    domain = stats.get("domain")
    if domain is not None and domain.warnings:
        print(domain.format_table(), file=sys.stderr)
        for w in domain.warnings:
            print(f"warning: {w}", file=sys.stderr)
    if stats.get("filtered") is not None:
        print(stats["filtered"].format_table())
    if args.method == "network":
        note = _model_note(args.model, n_rows)
        if note:
            print(f"plexloc fit: warning: {note}", file=sys.stderr)
    print(f"wrote {args.out} ({n_rows} localizations{rate})")
    return 0


def load_split_view(path: Path, *, option: str = "--split-view", data: Any = None) -> SplitViewConfig:
    """The :class:`~plexloc.config.models.SplitViewConfig` of ``path``: the ``split_view`` section of a configuration
    file (only that section is read: a lab configuration with channels, or a file holding split_view alone). ``option``:
    the command-line option that named the file, as the errors name it (``plexloc split`` takes it as ``--config``).
    ``data``: the file's YAML where the caller read it already (:func:`read_split_view_yaml`), not read again.

    Raises:
        InputError: an unreadable file, no ``split_view`` section, or a section that fails validation (named with
            the file and the field).
    """
    from plexloc.config.io import validate_config
    from plexloc.config.models import SplitViewConfig
    from plexloc.errors import InputError

    if data is None:
        data = read_split_view_yaml(path, option=option)
    section = data.get("split_view") if isinstance(data, dict) else None
    if section is None:
        raise InputError(f"{option}: the file has no split_view section (boxes: [x, y, width, height] per channel, "
                         "flip: none/x/y/xy per channel)", source=path)
    return validate_config(section, SplitViewConfig, source=f"{option} {path}: split_view")


def read_split_view_yaml(path: Path, *, option: str = "--split-view") -> Any:
    """The YAML of the configuration file ``path`` as read (:func:`load_split_view` validates its split_view).

    Raises:
        InputError: a missing or unreadable file, or invalid YAML (naming ``option`` and the file)."""
    import yaml

    from plexloc.config.io import load_yaml, yaml_error_text
    from plexloc.errors import InputError

    try:
        return load_yaml(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{option}: configuration file not found", source=path) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        text = yaml_error_text(err) if isinstance(err, yaml.YAMLError) else " ".join(str(err).split())
        raise InputError(f"{option}: cannot read the configuration: {text}", source=path) from None


@functools.lru_cache(maxsize=1)
def _model_file(model: str) -> dict:
    """The model file's payload, read once for the pixel-size and model-quality notes."""
    from plexloc.nets.io import read_model_file

    return read_model_file(model)


def _camera_file_pixel_size(paths, model) -> None:
    """--camera takes a camera from a whole configuration too; a pixel size in it that is not the model's was
    ignored without a word (a 160-nm configuration given to a 100-nm model: JI 5 %). Warned here."""
    import yaml

    from plexloc.config.io import load_yaml

    want = (_model_file(str(model)).get("config") or {}).get("px_size_nm")
    if want is None:
        return
    want = [float(v) for v in (want if isinstance(want, (list, tuple)) else (want, want))]
    for path in paths:
        try:
            data = load_yaml(Path(path).read_text())
        except (OSError, yaml.YAMLError):
            continue  # load_camera_configs read it already; nothing more to say
        px = data.get("px_size_nm") if isinstance(data, dict) else None
        if px is None:
            continue
        got = [float(v) for v in (px if isinstance(px, (list, tuple)) else (px, px))]
        if any(abs(g / w - 1.0) > 0.01 for g, w in zip(got, want)):
            print(f"plexloc fit: warning: {path} says px_size_nm {px} but the model was trained for {want[0]:g} nm "
                  "pixels; --camera takes only the camera from it, and the model's pixel size holds: fit this movie "
                  "with a model trained for its pixels", file=sys.stderr)


def _model_note(model, n_rows: int) -> str | None:
    """:func:`plexloc.infer.readiness.model_readiness_note` of the model file, read once (:func:`_model_file`)."""
    from plexloc.infer.readiness import model_readiness_note

    return model_readiness_note(_model_file(str(model)), n_rows)


def _filtered(args: argparse.Namespace) -> bool:
    """Whether a filter option was given: the fit's counts are then of the rows before the filters."""
    return any(getattr(args, k, None) is not None for k in ("min_prob", "min_photons", "max_photons", "max_sigma"))


def _say_saturated(stats: dict, args: argparse.Namespace) -> None:
    """How many rows were fitted from clipped pixels (column saturated_px > 0), at which level, and how to drop them
    (network and MLE fits alike; nothing where none), in process's words (:func:`plexloc.mle.pipeline.saturated_line`)."""
    from plexloc.mle.pipeline import saturated_line

    line = saturated_line(stats.get("saturated_rows"), stats.get("clip_levels") or (), table=args.out,
                          filtered=_filtered(args))
    if line:
        print(line, file=sys.stderr)


def _say_maps_cut(stats: dict) -> None:
    """Where full-chip sCMOS maps were cut to the movie's camera ROI (network and MLE fits alike)."""
    for c, shape, at, where in stats.get("camera_maps_cut") or []:
        print(f"channel {c}'s sCMOS maps ({shape[0]}x{shape[1]} px) cut to the movie's frames at chip x {at[0]}, "
              f"y {at[1]} ({where})", file=sys.stderr)
