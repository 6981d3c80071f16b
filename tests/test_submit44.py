"""``plexloc submit`` carries the YAMLs a configuration includes (``camera: camera.yaml``, ``psf: PSF.yaml``, a spline
``psf: PSF.h5``) and the files those name in turn: the server checks a configuration at submission and refused such a
job (422: add the include to the job's files); a worker could not have run it either."""

from __future__ import annotations

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")  # the service extra
from service_support import AgentThread, user_server as server  # noqa: E402,F401

from plexloc.cli.main import main  # noqa: E402

MICROSCOPE = "px_size_nm: 100\nframe_size: [16, 16]\n"
SCMOS = "kind: scmos\nqe: 0.8\ne_per_adu: gain.npy\nbaseline: 100\nread_variance: var.npy\n"




def _maps(folder, *names):
    for name in names:
        np.save(folder / name, np.full((16, 16), 0.5))


def _input_names(client, job_id: str, slot: str = "files") -> list[str]:
    job = client.get(f"/api/v1/jobs/{job_id}").json()
    return sorted(client.get(f"/api/v1/files/{fid}").json()["name"] for fid in job["inputs"].get(slot, []))


def test_an_included_camera_yaml_and_its_maps_travel_and_the_job_runs(server, tmp_path, capsys):
    """`camera: camera.yaml` (an sCMOS naming its maps) and `psf: PSF.yaml`: the two YAMLs and both maps are attached,
    each once; the server accepts the job and a worker runs it (before: 422, exit 2, nothing run)."""
    svc, live, client = server
    folder = tmp_path / "microscope"
    folder.mkdir()
    _maps(folder, "gain.npy", "var.npy")
    (folder / "camera.yaml").write_text(SCMOS)
    (folder / "PSF.yaml").write_text("kind: gaussian\nsigma_nm: 130\n")
    cfg = folder / "sim.yaml"
    cfg.write_text(MICROSCOPE + "psf: PSF.yaml\ncamera: camera.yaml\n")
    common = ["--server", live.url, "--token", svc.user_token]
    with AgentThread(live.url, svc.worker_token):
        code = main(["submit", "plexloc-simulate", *common, "--input", f"config={cfg}", "--set", "frames=2", "--wait"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = captured.out
    err = captured.err  # "attaching" on stderr (session 50): stdout is the job id and its state
    assert err.count("attaching") == 4, err
    assert f"camera.yaml to input files (named by {cfg})" in err and f"PSF.yaml to input files (named by {cfg})" in err
    assert f"gain.npy to input files (named by {folder / 'camera.yaml'})" in err
    assert f"var.npy to input files (named by {folder / 'camera.yaml'})" in err
    job_id, state = out.strip().splitlines()[-2:]
    assert state == "succeeded"
    assert _input_names(client, job_id) == ["PSF.yaml", "camera.yaml", "gain.npy", "var.npy"]
    outputs = client.get(f"/api/v1/jobs/{job_id}/outputs").json()
    assert {"movie.tif", "truth.csv"} <= {o["name"] for o in outputs}


def test_a_file_included_by_several_fields_travels_once(server, tmp_path, capsys):
    """Two channels' `camera: camera.yaml`, a whole configuration included as the camera (only its `camera` mapping is
    read: its psf's calibration does not travel) and its map named by two fields: each file once."""
    svc, live, client = server
    _maps(tmp_path, "gain.npy")
    (tmp_path / "camera.yaml").write_text("psf: {kind: spline, calibration: unused.h5}\n"
                                          "camera: {kind: scmos, e_per_adu: gain.npy, read_variance: gain.npy}\n")
    cfg = tmp_path / "two.yaml"
    cfg.write_text(MICROSCOPE + "channels:\n  - {psf: {kind: gaussian}, camera: camera.yaml}\n"
                   "  - {psf: {kind: gaussian}, camera: camera.yaml, transform: [[1, 0, 100], [0, 1, 0], [0, 0, 1]]}\n")
    common = ["--server", live.url, "--token", svc.user_token]
    code = main(["submit", "plexloc-simulate", *common, "--input", f"config={cfg}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err.count("attaching") == 2
    assert _input_names(client, captured.out.strip().splitlines()[-1]) == ["camera.yaml", "gain.npy"]


def test_a_spline_calibration_named_as_the_psf_travels(server, tmp_path, capsys):
    """`psf: PSF.h5` (a spline calibration named by its file alone) is a file the configuration names."""
    svc, live, client = server
    (tmp_path / "PSF.h5").write_bytes(b"not read at submission")
    cfg = tmp_path / "spline.yaml"
    cfg.write_text(MICROSCOPE + "psf: PSF.h5\ncamera: {kind: emccd}\n")
    common = ["--server", live.url, "--token", svc.user_token]
    code = main(["submit", "plexloc-simulate", *common, "--input", f"config={cfg}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"PSF.h5 to input files (named by {cfg})" in captured.err
    assert _input_names(client, captured.out.strip().splitlines()[-1]) == ["PSF.h5"]


@pytest.mark.parametrize("case", ["missing include", "include in a sub-folder", "missing map", "map in a sub-folder",
                                  "whole configuration's map missing"])
def test_an_include_or_its_file_out_of_reach_is_named_before_any_upload(server, tmp_path, capsys, case):
    """The error names the YAML that names the file, the field and the path (and, for a file an included YAML names,
    which configuration includes it); nothing is uploaded."""
    svc, live, client = server
    cfg = tmp_path / "sim.yaml"
    cfg.write_text(MICROSCOPE + "psf: {kind: gaussian}\ncamera: camera.yaml\n")
    camera = tmp_path / "camera.yaml"
    _maps(tmp_path, "gain.npy", "var.npy")
    camera.write_text(SCMOS)
    if case == "missing include":
        camera.unlink()
        where, expected = cfg, "field 'camera' names camera.yaml, which is not next to the configuration"
    elif case == "include in a sub-folder":
        (tmp_path / "cams").mkdir()
        camera.rename(tmp_path / "cams" / "camera.yaml")
        cfg.write_text(cfg.read_text().replace("camera.yaml", "cams/camera.yaml"))
        where, expected = cfg, "field 'camera' names cams/camera.yaml in a sub-folder"
    elif case == "missing map":
        (tmp_path / "var.npy").unlink()
        where, expected = camera, "field 'read_variance' names var.npy, which is not next to the configuration"
    elif case == "map in a sub-folder":
        (tmp_path / "maps").mkdir()
        (tmp_path / "var.npy").rename(tmp_path / "maps" / "var.npy")
        camera.write_text(SCMOS.replace("var.npy", "maps/var.npy"))
        where, expected = camera, "field 'read_variance' names maps/var.npy in a sub-folder"
    else:
        camera.write_text("camera: {kind: scmos, e_per_adu: nogain.npy}\n")
        where, expected = camera, "field 'camera.e_per_adu' names nogain.npy, which is not next to the configuration"
    common = ["--server", live.url, "--token", svc.user_token]
    n_files = len(client.get("/api/v1/files").json())
    assert main(["submit", "plexloc-simulate", *common, "--input", f"config={cfg}"]) == 2
    captured = capsys.readouterr()
    assert "attaching" not in captured.err
    assert f"{where}: {expected}" in captured.err, captured.err
    if where == camera:
        assert f"(camera.yaml is included by {cfg}, field 'camera')" in captured.err
    assert len(client.get("/api/v1/files").json()) == n_files


@pytest.mark.parametrize(("line", "warned"), [
    ("psf: {kind: spline, calibration: ~/plexloc-no-such/PSF.h5}\ncamera: {kind: emccd}\n",
     r"psf.calibration is a path in a home folder \(~/plexloc-no-such/PSF.h5\)"),
    ("psf: {kind: gaussian}\ncamera: /plexloc-no-such/camera.yaml\n",
     r"camera is an absolute path \(/plexloc-no-such/camera.yaml\)"),
], ids=["home folder", "absolute include"])
def test_a_home_folder_or_absolute_path_is_warned_about_not_refused(server, tmp_path, capsys, line, warned):
    """`calibration: ~/PSF.h5` is the worker's disk's, as an absolute path is (before: refused as 'not next to the
    configuration', though the loader reads it from the home folder); an include by absolute path is warned about
    as a map named so is (before: not a word)."""
    svc, live, client = server
    cfg = tmp_path / "home.yaml"
    cfg.write_text(MICROSCOPE + line)
    common = ["--server", live.url, "--token", svc.user_token]
    with pytest.warns(UserWarning, match=warned):
        code = main(["submit", "plexloc-simulate", *common, "--input", f"config={cfg}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "attaching" not in captured.err
