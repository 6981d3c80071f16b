"""log.csv's lr column is the rate its row's steps trained with: a row whose validation halved the rate showed the
halved rate (the next step's), one row early (training review, session 42)."""

from __future__ import annotations

import pytest
from test_train_review42 import fake_validation, no_curves, tiny_config  # noqa: F401 (no_curves: autouse fixture)

from plexloc.train import Trainer


def test_each_rows_lr_is_the_rate_its_steps_used(tmp_path):
    cfg = tiny_config(validate_every=1, lr_patience=2, warmup_steps=3, lr=1e-3, min_lr=2e-4, ema_steps=0)
    tr = Trainer(cfg, tmp_path / "run")
    losses = {1: 5.0, 2: 4.0, 3: 4.0, 4: 4.0, 5: 4.0}
    rates = fake_validation(tr, lambda s: losses.get(s, 3.0))  # the rate of every step, in order
    tr.run(steps=12)
    rows = [r for r in tr.rows if r["step"] >= 1]
    assert [r["step"] for r in rows] == list(range(1, 13))
    # a validation every step: row k's rate is step k's (halved after step 9: rows 10-12 at 5e-4, row 9 at 1e-3)
    assert [r["lr"] for r in rows] == pytest.approx(rates, rel=1e-12)
    assert rows[8]["lr"] == pytest.approx(1e-3) and rows[9]["lr"] == pytest.approx(5e-4)
