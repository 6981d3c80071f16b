"""Session 51 review of the training-section count coercion (``steps: 1e5``): read exactly, booleans refused."""

from __future__ import annotations

import pytest
from test_sim51 import _training


def test_quoted_counts_are_read_exactly(tmp_path):
    """The text went through a float: a quoted seed above 2**53 changed without a word (...993 -> ...992; pydantic had
    read it exactly before session 51), and '150000.5' was refused as "150000.5 is 150000"."""
    cfg = _training(tmp_path, seed="9007199254740993", steps="12345678901234567891", warmup_steps="1.5e4")
    assert (cfg.training.seed, cfg.training.steps, cfg.training.warmup_steps) == (
        9007199254740993, 12345678901234567891, 15000)
    text = _training(tmp_path, steps="150000.5")
    assert "field 'training.steps': takes a whole number (a count) (got '150000.5')" in text, text
    assert "is 150000" not in text
    assert "1.0000000000000001e5 is 100000.00000000001" in _training(tmp_path, steps="1.0000000000000001e5")


@pytest.mark.parametrize("field", ["batch_size", "steps", "validate_every", "seed"])
def test_booleans_are_not_counts(tmp_path, field):
    """``batch_size: yes`` (YAML's true) trained on batches of 1 and ``steps: true`` for 1 step: pydantic reads a
    boolean as 0 / 1 for an integer field."""
    text = _training(tmp_path, **{field: True})
    assert isinstance(text, str) and f"field 'training.{field}': takes a whole number (a count), not true" in text, text


@pytest.mark.parametrize("value", [1, 1.0, 100])
def test_detection_threshold_advice_is_a_valid_value(tmp_path, value):
    """``detection_threshold: 100`` was told "for 100 % write 1", and 1 is refused in turn ("for 1 % write 0.01")."""
    text = _training(tmp_path, detection_threshold=value)
    assert isinstance(text, str) and "field 'training.detection_threshold': is a probability above 0 and below 1 " \
        "(default 0.5)" in text, text
    assert "write 1 " not in text and "write 0.01" not in text
    assert "for 50 % write 0.5" in _training(tmp_path, detection_threshold=50)
