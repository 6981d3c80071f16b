"""``plexloc submit`` attaches only what the loader reads as a file: a camera number written as text with its unit
(``baseline: "100 ADU"``) goes to the server as written, where the loader's own check says what is wrong with it."""

from __future__ import annotations

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")  # the service extra
from service_support import user_server as server  # noqa: E402,F401

from plexloc.cli.main import main  # noqa: E402

MICROSCOPE = "px_size_nm: 100\nframe_size: [16, 16]\npsf: {kind: gaussian}\n"




@pytest.mark.parametrize("value", ['"100 ADU"', '"100"', "high"])
def test_a_camera_number_written_as_text_is_not_taken_for_a_file(server, tmp_path, capsys, value):
    """A camera YAML (fit's `camera` slot, checked as a camera) with `baseline: "100 ADU"`. Before: submit took the
    text for a file to attach and stopped (exit 2) with "field 'baseline' names 100 ADU, which is not next to the
    configuration", nothing sent. After: nothing attached, the job goes to the server, whose loader answers with the
    field and 'units are not written in the value' (422, exit 2); "100" is a number and the job is accepted."""
    svc, live, client = server
    movie = tmp_path / "m.tif"
    movie.write_bytes(b"II*\x00" + bytes(60))
    model = tmp_path / "model.pt"
    model.write_bytes(b"not read")
    cam = tmp_path / "cam.yaml"
    cam.write_text(f"kind: emccd\nqe: 0.9\nem_gain: 100\ne_per_adu: 12\nread_sigma: 50\nbaseline: {value}\n")
    common = ["--server", live.url, "--token", svc.user_token]
    code = main(["submit", "plexloc-fit", *common, "--entry", "fit", "--input", f"movie={movie}",
                 "--input", f"model={model}", "--input", f"camera={cam}"])
    captured = capsys.readouterr()
    assert "attaching" not in captured.err, captured.err
    assert "not next to the configuration" not in captured.err, captured.err
    jobs = client.get("/api/v1/jobs").json()
    if value == '"100"':
        assert code == 0 and len(jobs) == 1, captured.err
        return
    assert code == 2 and jobs == [], captured.err
    assert "server (422)" in captured.err and "(cam.yaml)" in captured.err, captured.err
    assert "field 'baseline'" in captured.err and "units are not written in the value" in captured.err, captured.err


def test_a_configuration_camera_number_with_a_unit_goes_to_the_server_and_its_maps_still_travel(server, tmp_path,
                                                                                                capsys):
    """A simulate configuration whose sCMOS camera names its gain map (gain.npy: attached) and writes its baseline
    as "100 ADU" (not a file: not attached, refused by the server's loader naming the field); with the number
    written as a number the same files travel and the job is accepted."""
    svc, live, client = server
    np.save(tmp_path / "gain.npy", np.full((16, 16), 0.5))
    cfg = tmp_path / "sim.yaml"
    cfg.write_text(MICROSCOPE + 'camera: {kind: scmos, e_per_adu: gain.npy, baseline: "100 ADU"}\n')
    common = ["--server", live.url, "--token", svc.user_token]
    assert main(["submit", "plexloc-simulate", *common, "--input", f"config={cfg}"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("attaching") == 1 and "gain.npy to input files" in captured.err, captured.err
    assert "server (422)" in captured.err and "field 'camera.baseline'" in captured.err, captured.err
    assert "units are not written in the value" in captured.err, captured.err
    cfg.write_text(MICROSCOPE + "camera: {kind: scmos, e_per_adu: gain.npy, baseline: 100}\n")
    assert main(["submit", "plexloc-simulate", *common, "--input", f"config={cfg}"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("attaching") == 1 and "gain.npy to input files" in captured.err, captured.err
