"""The backend interface without a model: sampling rules, preflight checks, the per-process
registry (start / reload / swap / close), pairing strategies and backend choice."""

from __future__ import annotations

import importlib.util

import pytest

from generation import backends, conf, pairing
from generation.backends import (
    BackendError,
    InvalidSamplingError,
    ModelLoadError,
    ModelTooLargeError,
    SamplingConfig,
)
from generation.backends.base import check_model_source, request_seed


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n": 0}, "n must be 1..64"),
        ({"n": 2.5}, "n must be 1..64"),
        ({"temperature": -0.1}, "temperature must be between 0"),
        ({"top_p": 0}, "top_p must be in (0, 1]"),
        ({"top_p": 1.01}, "top_p must be in (0, 1]"),
        ({"max_tokens": 0}, "max_tokens must be a positive integer"),
        ({"seed": -1}, "seed must be an integer"),
        ({"seed": "7"}, "seed must be an integer"),
        ({"beam_width": 4}, "unknown parameter(s) ['beam_width']"),
    ],
)
def test_invalid_sampling_is_rejected_with_a_clear_message(params, message):
    with pytest.raises(InvalidSamplingError, match="invalid sampling") as err:
        SamplingConfig.from_dict(params)
    assert message in str(err.value)


def test_sampling_defaults_and_round_trip():
    config = SamplingConfig.from_dict({"n": 4, "temperature": 0, "seed": 3})
    assert config.greedy and config.to_dict() == {
        "n": 4, "temperature": 0, "top_p": 1.0, "max_tokens": 64, "seed": 3,
    }


def test_request_seed_depends_on_seed_and_prompt_only():
    assert request_seed(7, [1, 2, 3]) == request_seed(7, [1, 2, 3])
    assert request_seed(7, [1, 2, 3]) != request_seed(8, [1, 2, 3])
    assert request_seed(7, [1, 2, 3]) != request_seed(7, [3, 2, 1])
    assert 0 <= request_seed(2**31 - 1, list(range(500))) < 2**31


def test_preflight_rejects_missing_unreadable_and_oversized_models(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        check_model_source(str(tmp_path / "nope"))
    with pytest.raises(ModelLoadError, match="no config.json"):
        check_model_source(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"x" * 4096)
    check_model_source(str(tmp_path), available_bytes=8192)
    with pytest.raises(ModelTooLargeError, match="GiB of weights but only"):
        check_model_source(str(tmp_path), available_bytes=1024)
    check_model_source("Qwen/Qwen2.5-0.5B")  # hub ids resolve at load time


def test_registry_keeps_one_backend_per_process(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
    try:
        first = backends.get_backend("fake", str(a))
        assert backends.get_backend("fake", str(a)) is first
        reloaded = backends.get_backend("fake", str(b))  # same options: weights reloaded
        assert reloaded is first and first.model == str(b)
        swapped = backends.get_backend("fake", str(a), flavour="other")
        assert swapped is not first and backends.active_backend() is swapped
        with pytest.raises(BackendError, match="unknown generation backend 'tgi'"):
            backends.get_backend("tgi", str(a))
        assert backends.active_backend() is swapped
    finally:
        backends.close_backend()


def test_a_closed_or_dead_backend_is_replaced(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    try:
        first = backends.get_backend("fake", str(tmp_path))
        first.close()  # what a backend does when its engine dies
        second = backends.get_backend("fake", str(tmp_path))
        assert second is not first and not second.closed
    finally:
        backends.close_backend()


def test_failed_start_leaves_no_backend(tmp_path):
    with pytest.raises(ModelLoadError):
        backends.get_backend("fake", str(tmp_path / "missing"))
    assert backends.active_backend() is None


def test_vllm_falls_back_to_transformers_when_not_installed(settings, monkeypatch):
    settings.GENERATION_BACKEND = "vllm"
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a)
    )
    assert conf.backend_name() == "transformers"
    assert set(conf.backend_options("vllm")) >= {"tensor_parallel_size", "kv_cache_gib"}


def test_pairing_strategies():
    assert pairing.pairs_random([1, 2, 3, 4, 5], seed=1) == pairing.pairs_random(
        [1, 2, 3, 4, 5], seed=1
    )
    pairs = pairing.pairs_random([1, 2, 3, 4, 5], seed=1)
    assert len(pairs) == 2 and len({i for p in pairs for i in p}) == 4
    assert pairing.pairs_all([1, 2, 3]) == [(1, 2), (1, 3), (2, 3)]
    assert pairing.pairs_head_to_head([1, 2, 3], [4, 2]) == [(1, 4)]
    assert pairing.pairs_best_vs_worst([1, 2, 3], [0.5, 0.9, 0.1]) == [(2, 3)]
    assert pairing.pairs_best_vs_worst([1, 2], [0.5, 0.5]) == []
    with pytest.raises(ValueError, match="one score per response"):
        pairing.pairs_best_vs_worst([1, 2], [0.5])
