"""Defaults that work: the learning rate from the policy's size, and min_pairs per round."""

from __future__ import annotations

import json
import struct
from types import SimpleNamespace

import pytest

from prefloop.exceptions import ApplicationError
from training import defaults
from training.rounds import steps
from training.rounds.config import RoundSettings


def test_learning_rate_rule_anchors_and_monotone():
    assert defaults.default_learning_rate(1_400_000) == 1e-4  # the demo model
    assert defaults.default_learning_rate(10_000_000) == 1e-4
    assert defaults.default_learning_rate(7_000_000_000) == 5e-7
    assert defaults.default_learning_rate(70_000_000_000) == 5e-7
    # Log-linear: the geometric middle of the sizes gets the geometric middle of the rates.
    middle = defaults.default_learning_rate(int((1e7 * 7e9) ** 0.5))
    assert middle == pytest.approx((1e-4 * 5e-7) ** 0.5, rel=0.02)
    sizes = [10**k for k in range(6, 11)]
    rates = [defaults.default_learning_rate(n) for n in sizes]
    assert rates == sorted(rates, reverse=True)


def _safetensors(path, shapes: dict[str, list[int]]) -> None:
    header = {name: {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}
              for name, shape in shapes.items()}
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)


def test_parameter_count_and_filled_hyperparameters(tmp_path):
    _safetensors(tmp_path / "model.safetensors", {"embed": [1000, 64], "head": [64, 1000]})
    assert defaults.parameter_count(tmp_path) == 128_000
    filled = defaults.hyperparameters_with_defaults({"beta": 0.1}, policy_folder=str(tmp_path))
    assert filled == {"beta": 0.1, "lr": 1e-4}
    kept = defaults.hyperparameters_with_defaults({"lr": 3e-6}, policy_folder=str(tmp_path))
    assert kept == {"lr": 3e-6}
    assert defaults.parameter_count(tmp_path / "missing") is None
    assert defaults.hyperparameters_with_defaults({}, policy_folder="org/hub-model") == {}


def test_min_pairs_setting_and_message():
    assert RoundSettings().min_pairs == 0
    assert RoundSettings.from_dict({"min_pairs": 40}).min_pairs == 40
    with pytest.raises(ApplicationError):
        RoundSettings(min_pairs=-1)
    rnd = SimpleNamespace(config={"min_pairs": 40})
    short = steps._pairs_short(rnd, rows=12)
    assert "only 12 training pairs" in short and "at least 40" in short
    assert steps._pairs_short(rnd, rows=40) == ""
    assert steps._pairs_short(SimpleNamespace(config={}), rows=0) == ""
