"""Review of session 46's second batch (reviewer b): what it found wrong.

- a queued job's note (``jobs.queue_note``) suggested an override made of the most CPU cores of one worker and the
  most RAM of another, which fits neither (the job resubmitted so waited again), and told a GPU job on a GPU worker
  short of cores only to drop its GPU;
- ``plexloc serve --max-upload-mb`` below one byte was refused as the setting ``max_upload_bytes`` and 0, and
  ``--user-quota-gb`` below one byte started a server with a quota of 0 bytes;
- ``plexloc evaluate``'s colour-order warning for a table of more colours than the truth's (``plexloc color --colors
  3`` on a 2-dye simulation: 50.64 % colour accuracy, 96.36 % read right) told to give ``--ratios`` in the truth's
  order, which does not remove the extra colour; it names the count and ``--colors 2`` now.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

pytest.importorskip("sqlalchemy")  # the service extra

from plexloc.service import jobs  # noqa: E402


def _hint_override(hint: str) -> dict[str, int]:
    """The ``"hardware"`` override a queue note's hint names."""
    found = re.search(r'"hardware": \{(.*)\}\)$', hint)
    assert found, hint
    return {k: int(v) for k, v in re.findall(r'"(\w+)": (\d+)', found.group(1))}


def _takes(need: dict, override: dict, worker) -> bool:
    """Whether ``worker`` takes the job of ``need`` resubmitted with ``override`` (its GPU memory dropped with no GPU,
    as jobs.submit does)."""
    hw = {**need, **override}
    if hw.get("gpus", 0) == 0:
        hw["gpu_memory_mb"] = 0
    return jobs._fits(hw, hw.get("gpus", 0), worker.hardware)


def _worker(name: str, **hw):
    return SimpleNamespace(name=name, hardware={"gpus": 0, "gpu_memory_mb": 0, **hw})


def test_the_queue_notes_override_fits_one_worker_not_the_most_of_each():
    """Workers of 8 cores and 4 GB, and of 2 cores and 64 GB; a job of 16 cores and 32 GB. Before: '--cpus 8' (the
    most cores of the one, the RAM of the other kept): 8 cores and 32 GB, which neither has."""
    workers = [_worker("a", cpus=8, memory_mb=4000), _worker("b", cpus=2, memory_mb=64000)]
    need = {"cpus": 16, "memory_mb": 32000, "gpus": 0, "gpu_memory_mb": 0}
    assert not any(jobs._fits(need, 0, w.hardware) for w in workers)
    hint = jobs._override_hint(need, 0, workers)
    override = _hint_override(hint)
    assert any(_takes(need, override, w) for w in workers), hint  # before: {"cpus": 8}, taken by none
    assert hint == ' (on these workers: submit with --cpus 2, or "hardware": {"cpus": 2})'
    # the same flags on the command line's side
    assert "--cpus 2" in hint and "--memory-mb" not in hint


def test_a_gpu_job_short_of_cores_on_a_gpu_worker_keeps_its_gpu():
    """A GPU worker with 2 cores: the GPU job of 4 cores needs --cpus 2, not to run on a CPU (before: '--gpus 0
    --cpus 2')."""
    workers = [_worker("gpu", cpus=2, memory_mb=64000, gpus=1, gpu_memory_mb=24000)]
    need = {"cpus": 4, "memory_mb": 16000, "gpus": 1, "gpu_memory_mb": 8000}
    hint = jobs._override_hint(need, 1, workers)
    assert hint == ' (on these workers: submit with --cpus 2, or "hardware": {"cpus": 2})'
    assert _takes(need, _hint_override(hint), workers[0])
    # beside a CPU worker that needs the GPU dropped too: the GPU kept
    workers.append(_worker("cpu", cpus=32, memory_mb=64000))
    assert jobs._override_hint(need, 1, workers) == hint
    # CPU workers only: the GPU dropped, the cores and RAM of the one worker that then fits
    cpu_only = [_worker("small", cpus=2, memory_mb=6000), _worker("big-ram", cpus=1, memory_mb=64000)]
    hint = jobs._override_hint(need, 1, cpu_only)
    assert hint == (' (on a CPU: submit with --gpus 0 --cpus 1, or "hardware": {"gpus": 0, "cpus": 1})')
    assert any(_takes(need, _hint_override(hint), w) for w in cpu_only)


def test_no_hint_where_no_worker_reports_cores_or_ram():
    workers = [SimpleNamespace(name="bare", hardware={})]
    assert jobs._override_hint({"cpus": 4, "memory_mb": 8000, "gpus": 0}, 0, workers) == ""


def test_serve_names_the_option_of_a_limit_below_one_byte(tmp_path, capsys):
    """--max-upload-mb 1e-9 was refused as 'max_upload_bytes: Input should be greater than or equal to 1 (got 0)':
    neither the option nor the value given; --user-quota-gb 1e-12 started a server whose quota of 0 bytes refused
    every upload."""
    pytest.importorskip("uvicorn")
    from plexloc.cli import serve
    from plexloc.cli.main import main
    from plexloc.errors import InputError

    assert main(["serve", "--data-dir", str(tmp_path / "data"), "--max-upload-mb", "1e-9"]) == 2
    err = capsys.readouterr().err
    assert "--max-upload-mb 1e-09 is less than one byte (9.54e-07 MB); give a larger value" in err, err
    assert "max_upload_bytes" not in err
    with pytest.raises(InputError, match=r"--user-quota-gb 1e-12 is less than one byte \(9\.31e-10 GB\)"):
        serve._bytes(1e-12, 2**30, "--user-quota-gb")
    assert serve._bytes(1.5, 2**20, "--max-upload-mb") == 1572864 and serve._bytes(None, 2**20, "x") is None


def test_the_colour_order_warning_of_too_many_colours_says_to_assign_the_truths_count():
    import numpy as np

    from plexloc.evaluate.matching import match
    from plexloc.evaluate.metrics import color_label_mismatch
    from plexloc.table import LocTable

    rng = np.random.default_rng(3)
    n = 200
    color = np.repeat([0, 1], n // 2)
    truth = LocTable({"frame": np.arange(n), "x_nm": rng.uniform(0, 6400, n), "y_nm": rng.uniform(0, 6400, n),
                      "z_nm": np.zeros(n), "photons": np.full(n, 2000.0), "color": color})
    pred = np.where(color == 0, 0, 2)  # dye 1 estimated as colour 2 of 3, a third colour between the dyes
    pred[[0, 1, 2, 3, 100, 101, 102, 103, 104, 105]] = 1
    said = color_label_mismatch(truth, truth.with_columns(color=pred), match(truth, truth, dim=2))
    assert said is not None and "read as 0 -> 0, 1 -> none of the truth colours, 2 -> 1" in said
    assert "of 95.00 % instead of 51.00 %" in said
    assert said.endswith("the table has 3 colours for the truth's 2: assign 2 (plexloc color --colors 2, or --ratios "
                         "of the truth's 2 dyes in its order)"), said  # before: give --ratios in the truth's order
    assert "--ratios in the truth's colour order" not in said
    # numbered the other way with as many colours as the truth: the --ratios advice, as before
    said = color_label_mismatch(truth, truth.with_columns(color=1 - color), match(truth, truth, dim=2))
    assert said.endswith("so give --ratios in the truth's colour order"), said


def test_calibrate_checks_the_z_step_a_micro_manager_stack_records(tmp_path):
    """The Micro-Manager branch of plexloc calibrate's metadata check (session 46 tested ImageJ's only): a summary
    'z-step_um' of 0.1 against --z-step 50 is said; one whose 'Slices' is not the stack's is not a z-stack's step."""
    import argparse

    import numpy as np
    from test_io_roi import write_mm_stack

    from plexloc.cli.calibrate import _metadata_scales

    frames = np.random.default_rng(0).integers(100, 4000, size=(10, 24, 32)).astype(np.uint16)
    p = write_mm_stack(tmp_path / "beads_MMStack_Pos0.ome.tif", frames, summary={"z-step_um": 0.1, "Slices": 10},
                       image_meta={})
    args = argparse.Namespace(stacks=[p], pixel_size=100.0, z_step=50.0)
    said = _metadata_scales(args, n_slices=10)
    assert said == [f"{p}: its metadata give a z step of 100 nm (Micro-Manager 'z-step_um' = 0.1) but --z-step is 50 "
                    "nm: every z of the calibration follows --z-step (0.5x the recorded step); give --z-step 100 if "
                    "the metadata are right"]
    args.z_step = 101.0  # within 3 %
    assert _metadata_scales(args, n_slices=10) == []
    q = write_mm_stack(tmp_path / "t_MMStack_Pos0.ome.tif", frames, summary={"z-step_um": 0.1, "Slices": 1},
                       image_meta={})
    assert _metadata_scales(argparse.Namespace(stacks=[q], pixel_size=100.0, z_step=50.0), n_slices=10) == []


@pytest.mark.parametrize("dark, named", [([12, 13], "12, 13"), ([12, 13, 14], "12, 13, 14"), ([0, 1], "0, 1"),
                                         ([31, 32], "31, 32")])
def test_dark_slices_in_a_row_are_refused_each_named(dark, named):
    """Each dark slice was compared with the next slice on either side alone: two in a row each had a dark neighbour,
    and the stack calibrated without a word (the first two slices dark: slice 1 not named)."""
    import numpy as np
    from test_beadaudit46 import DZ, PX, _field

    from plexloc.calibrate import calibrate_spline
    from plexloc.errors import InputError

    st = _field(2e4, seed=1)
    for k in dark:
        st[k] = np.random.default_rng(6 + k).poisson(20.0, st[k].shape)  # the shutter closed
    with pytest.raises(InputError, match=rf"slice\(s\) {named} of 33 hold much less of the beads' light than the "
                                         rf"slices beside them \(each one's share of the light beside it, over the 16 "
                                         rf"beads: {': 0%, '.join(named.split(', '))}: 0%\): a dark or dropped frame"):
        calibrate_spline([st], z_step_nm=DZ, px_size_nm=PX)


def test_beads_fading_out_of_the_window_at_a_stack_end_are_not_dark_slices():
    """A biplane channel focused off the stack's centre: its first slices hold no light in the beads' windows and the
    next ones rise slowly (0, 0, 0, 37, 41, 44 ... % of the slices beyond). Compared one-sided with the brightest of
    the next 5, slices 0-7 were refused as dark (tests/test_calibrate_vectorial.py's biplane bar failed in the full
    suite, session 46); a step from dark to full light at an end is still refused (the [0, 1] and [31, 32] cases)."""
    import numpy as np

    from plexloc.calibrate.spline import _refuse_dark_slices
    from plexloc.errors import InputError

    class Sel:
        used = np.arange(4)
        rows = np.full(4, 20)
        cols = np.array([20, 40, 60, 80])

    z = np.arange(33)
    light = np.clip((z - 2.5) / 12.0, 0.0, 1.0)  # nothing in slices 0-2, then a rise to full light at slice 15
    yy, xx = np.mgrid[0:41, 0:101]
    spot = sum(np.exp(-((xx - c) ** 2 + (yy - 20) ** 2) / (2 * 1.5**2)) for c in Sel.cols)
    rng = np.random.default_rng(0)
    st = rng.poisson(10.0 + 3000.0 * light[:, None, None] * spot[None]).astype(float)
    _refuse_dark_slices(st, Sel(), roi_px=15, src="fade")  # no error
    st[30] = rng.poisson(10.0, st[30].shape)  # a dark slice where the light is full on both sides: still refused
    with pytest.raises(InputError, match=r"slice\(s\) 30 of 33 hold much less"):
        _refuse_dark_slices(st, Sel(), roi_px=15, src="fade")
