"""``plexloc process MOVIE [MOVIE ...] --model RUN_DIR --out DIR``: each movie to its localizations, drift correction,
report, merged table, image and FRC in one command (:mod:`plexloc.workflow`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plexloc.cli._common import int_at_least, nonnegative_int, positive_float
from plexloc.cli.drift import add_fiducial_options, check_fiducial_options, fiducial_kwargs
from plexloc.cli.fit import add_fit_method_options, check_fit_method_options, load_split_view
from plexloc.workflow import INPUT_NAMES, MAX_DRIFT_NM


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "process",
        help="movie(s) to localizations, drift correction, report, merged table, image and FRC in one command",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
For each movie (a TIFF stack or a folder of TIFFs), in this order, into DIR/NAME/ (NAME: the movie's file name
without .tif/.tiff/.btf/.ome, a folder's name; one movie per channel: their common start without a channel tag):
  1. locs.csv     the fit (as plexloc fit; --method mle --config CONFIG for the maximum-likelihood fitter)
  2. drift.png,   the drift estimated (as plexloc drift: RCC, --drift-engine comet or fiducials) and
     locs_dc.csv  subtracted; not subtracted where the engine calls its estimate unreliable or there are too
                  few localizations: no locs_dc.csv then, the steps below take locs.csv (summary.json says why;
                  fiducials: locs_no_fiducials.csv, locs.csv without the markers' rows)
  3. merged.csv   one localization per on-event (as plexloc merge: 50 nm, gap 1)
  4. report.html  the report of the table before merging (as plexloc report; NeNA needs consecutive frames),
                  its FRC that of merged.csv, as in summary.json
  5. image.png    the merged table over the movie's whole field of view (as plexloc render: Gaussian of each
                  localization's sigma, or a histogram; a scale bar); a 3D table coloured by z, as plexloc render
                  --color-by z; its key image_legend.png: the scale bar's length and the pixel (2D), and the z
                  scale in nm (3D)
  6. summary.json rows, frames, frames/s, drift range and uncertainty (x and y; z's own for a 3D table), NeNA
                  (before merging), FRC resolution (of the merged table), the image's z range (3D), the report's
                  summary, every warning issued (those of reading the camera file and model among them); the
                  files it names inside DIR relative to DIR; the movies as given, and their absolute paths
                  (movies_resolved; not with --input-names file-name)
Then DIR/summary.csv is written, one row per movie folder in DIR (this run's, and those of earlier runs not
processed again, from their summary.json), and this run's rows printed as a table. Its columns: name (the folder),
status (ok or failed; unknown: a summary.json that cannot be read; after Ctrl-C, SIGTERM or a full disk: interrupted
for the movie under way and not_started for those after it, where they have no folder), rows (localizations of
locs.csv), frames (fitted), frames_per_s (of the fit), drift (applied, unreliable: not subtracted, not estimated, or
off), drift_range_nm (the estimate's largest lateral range, x or y, nm; also where it was not subtracted),
merged_rows (of merged.csv), nena_nm (NeNA of the table before merging, nm; a network's reads low, see report.html),
frc_nm (FRC resolution of the merged table, nm; empty where the curve gives none), seconds (the movie's), movies
(;-separated) and error (a failed movie's step and error; why a movie was not finished).

Run again into the same DIR, each movie's earlier DIR/NAME is replaced whole once its new one is complete; the
folders of movies not given stay as they were, and summary.csv keeps describing them (both said). summary.csv is
also written after Ctrl-C, SIGTERM or a full disk: it always describes the folders that DIR holds, and every movie
given that the run did not finish (a row of status interrupted or not_started, or its earlier folder's row with an
error saying that it was not processed again): what to run again.
Nothing in DIR is replaced that is not the same movie's earlier result (the same file, by its absolute path, from
whatever working folder it is given; a folder whose summary.json has no movies_resolved, written before plexloc
recorded them: by the path as given, so that from another working folder it goes to NAME_2): a movie whose NAME is
taken in DIR by another movie's result (another folder's movie.tif), by a folder plexloc process did not write, by
the movie itself (a folder of TIFFs in DIR), or by a name that differs in case only (one folder on a
case-insensitive disk) goes to NAME_2 (a warning says so); two movies of one name in one run get NAME and NAME_2,
and a movie given twice is processed once. A movie that fails where DIR/NAME holds its earlier result leaves that
result as it was: the failed attempt goes to DIR/NAME.failed (removed when a later run succeeds).

A single-channel model (or one that cuts a split-view movie into its channels) takes any number of movies, one
acquisition each. A multi-channel model without split_view takes one acquisition per command: one movie per
channel, in channel order (plexloc process cell1_ch0.tif cell1_ch1.tif --model RUN --out DIR writes DIR/cell1/).

A movie that fails (a corrupt TIFF) does not stop the others: its folder holds the files finished before the error,
FAILED.txt and summary.json with the error; its row in summary.csv says failed and why, and the exit code is 1.
Every file is written under a temporary name: a movie's folder appears, complete or marked failed, when its
last step ends; Ctrl-C or SIGTERM removes the folder under way (an earlier one of that name is kept). A full disk
(or quota) ends the run the same way, with an error naming the file and the space left (the movies after it would
fail as well).
The separate commands (plexloc fit, drift, report, merge, render, frc) remain for finer control.""",
    )
    p.add_argument("movie", type=Path, nargs="+", help="TIFF stacks or folders of TIFFs, one acquisition each (a "
                   "multi-channel model: one movie per channel)")
    p.add_argument("--out", type=Path, required=True, help="output folder (one folder per movie, and summary.csv)")
    add_fit_method_options(p)
    p.add_argument("--no-drift", action="store_true", help="no drift correction (no drift.png, no locs_dc.csv)")
    p.add_argument("--drift-engine", choices=("comet", "fiducials", "rcc"), default="rcc",
                   help="rcc (default, as plexloc drift's) or comet (RCC where comet-smlm is not installed; much "
                   "slower: 411 s against RCC's 0.3 s on a 10,000-frame 64 x 64 movie, one CPU thread), or fiducials "
                   "(from fiducial markers in the sample, found as plexloc drift --engine fiducials finds them, with "
                   "its options below; their rows are removed from locs_dc.csv unless --keep-fiducials), as plexloc "
                   "drift --engine")
    p.add_argument("--drift-segments", type=int_at_least(2), default=10, metavar="N",
                   help="rcc, comet: time windows of the drift estimate, >= 2 (default 10), as plexloc drift "
                   "--segments")
    p.add_argument("--max-drift", type=positive_float, default=MAX_DRIFT_NM, metavar="NM",
                   help=f"rcc, comet: largest drift searched for (COMET pair radius, RCC window; default "
                   f"{MAX_DRIFT_NM:g}), as plexloc drift --max-drift")
    add_fiducial_options(p, "--drift-engine")
    p.add_argument("--no-merge", action="store_true",
                   help="no merging (no merged.csv; the image and FRC take the table before merging)")
    p.add_argument("--merge-radius", type=positive_float, default=50.0, metavar="NM",
                   help="link radius of the merge in nm (default 50)")
    p.add_argument("--merge-gap", type=nonnegative_int, default=1, metavar="FRAMES",
                   help="missing frames bridged by the merge (default 1)")
    p.add_argument("--render-px", type=positive_float, default=None, metavar="NM",
                   help="pixel of image.png in nm (default 10, coarser where the field of view would be over 8192 "
                   "pixels on a side)")
    p.add_argument("--input-names", choices=INPUT_NAMES, default="as-given",
                   help="how summary.csv, summary.json and report.html name the movies and the model: as-given "
                   "(default: as on this command line) or file-name (the file name alone, and any other absolute "
                   "path by its file name: the job service's workers, whose scratch folders mean nothing to the "
                   "user). Files inside DIR are named relative to DIR either way")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Process the movies (:func:`plexloc.workflow.process_movies`); exit code 1 where any movie failed."""
    from plexloc.cli._common import check_outputs, resolve_device
    from plexloc.config import load_camera_configs, load_config
    from plexloc.errors import InputError
    from plexloc.workflow import ProcessOptions, format_summary, noting_warnings, process_movies

    check_fit_method_options(args)
    check_fiducial_options(args, args.drift_engine, "--drift-engine", no_drift=args.no_drift)
    before: list[str] = []  # the camera's defaults and the like: in every summary.json, not only on the terminal
    with noting_warnings(before):
        config = load_config(args.config) if args.method == "mle" else None
        split_view = load_split_view(args.split_view) if args.split_view is not None else None
    if args.out.exists() and not args.out.is_dir():
        raise InputError("--out must be a folder (a folder per movie and summary.csv go in it); it is a file",
                         source=args.out)
    check_outputs(args.out / "summary.csv")
    camera = None
    if args.camera:
        with noting_warnings(before):
            cameras = [c for path in args.camera for c in load_camera_configs(path)]
        camera = cameras[0] if len(cameras) == 1 else cameras
    options = ProcessOptions(
        method=args.method, model=args.model, config=config, camera=camera, device=resolve_device(args.device),
        threshold=args.threshold, batch_frames=args.batch_frames, refine_mle=args.refine_mle, precision=args.precision,
        split_view=split_view, roi_offset_px=None if args.roi_offset is None else tuple(args.roi_offset),
        filters=dict(min_prob=args.min_prob, max_sigma_nm=args.max_sigma, min_photons=args.min_photons,
                     max_photons=args.max_photons),
        drift=not args.no_drift, drift_engine=args.drift_engine, drift_segments=args.drift_segments,
        max_drift_nm=args.max_drift, fiducial_options=fiducial_kwargs(args), merge=not args.no_merge,
        merge_radius_nm=args.merge_radius, merge_gap=args.merge_gap, render_px_nm=args.render_px,
        input_names=args.input_names)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    # SIGTERM ends the run as Ctrl-C does (plexloc.cli.main.terminate_as_interrupt, around every command): the movie
    # under way's hidden partial folder removed, its earlier folder kept
    results = process_movies(args.movie, args.out, options, log=log, warnings_before=before)
    for r in results:
        notes = r.summary.get("fit", {}).get("notes", [])
        if notes:  # each said as its fit ended (log); a reminder here, after the batch (a failed attempt may have
            # stopped before its report.html)
            where = "report.html and summary.json" if (r.folder / "report.html").is_file() else "summary.json"
            print(f"plexloc process: {r.acquisition.name}: {len(notes)} note(s) on the fit above (also in its "
                  f"{where})", file=sys.stderr)
        drift = r.summary.get("drift") or {}
        if drift.get("state") in ("unreliable", "not estimated"):
            print(f"plexloc process: {r.acquisition.name}: drift not subtracted: {drift['reason']}", file=sys.stderr)
    print(format_summary(results))
    failed = [r for r in results if not r.ok]
    print(f"wrote {args.out / 'summary.csv'} ({len(results) - len(failed)} of {len(results)} movie(s) processed"
          + (f"; failed: {', '.join(r.acquisition.name for r in failed)}" if failed else "") + ")")
    return 1 if failed else 0
