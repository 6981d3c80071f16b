"""The README's library example runs as written (a few training steps instead of three minutes)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_library_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    code = next(b for b in blocks if "fit_movie_to_file" in b)
    assert "run(minutes=3)" in code
    code = code.replace("run(minutes=3)", "run(steps=2)").replace('"examples/', f'"{ROOT}/examples/')
    assert "save_image(render(net," in code
    code = code.replace("save_image(render(net,", "save_image(render(mle,")  # a 2-step model may find nothing
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    scope: dict = {}
    try:
        exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own example
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / "movie.tif").exists() and (tmp_path / "run" / "model.pt").exists()
    assert len(scope["locs"]) == scope["n"] and (tmp_path / "locs.h5").exists()
    assert scope["movie"].frames.shape[:2] == (1, 100)
    assert len(scope["net"]) == len(scope["locs"])  # the in-memory fit gives the file's table
    assert len(scope["mle"]) > 100 and 0 < scope["m"].jaccard <= 100  # the MLE of 100 frames of demo_2d, scored
    assert scope["ratio"] > 0.5 and (tmp_path / "net.png").stat().st_size > 1000
