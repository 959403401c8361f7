"""``make demo``'s output: numbered stages, a progress bar with step and ETA for the
model build, no kombu hostname warning, and a clean stop that says so."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import pytest
from django.core.management import call_command
from kombu import Connection

from frontend.demo_progress import BuildProgress, bar_line, duration
from frontend.management.commands.run_demo import stop_children


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bar_shows_step_share_and_time_left():
    line = bar_line(step=228, total=912, elapsed=60.0, detail="loss 1.234 lr 3e-03")
    assert line.startswith("[" + "#" * 8 + "-" * 22 + "] step 228/912")
    assert " 25%" in line and "ETA 3m 00s" in line and "loss 1.234" in line
    assert "done" in bar_line(step=912, total=912, elapsed=240.0)
    assert duration(59.6) == "1m 00s" and duration(5) == "5s"


def test_build_lines_become_a_bar_and_other_lines_pass_through():
    out, clock = io.StringIO(), FakeClock()
    progress = BuildProgress(out, clock=clock)
    progress.write("corpus: 1200 conversations; tokenizer: 1024 tokens\n")
    clock.now += 30
    progress.write("step 100/400 loss 2.500 lr 3.00e-03 9,000 tok/s\n")
    lines = out.getvalue().splitlines()
    assert lines[0].strip().startswith("corpus:")
    assert "step 100/400" in lines[1] and "ETA 1m 30s" in lines[1] and "loss 2.500" in lines[1]


def test_default_broker_url_names_a_host(caplog):
    from prefloop import settings as project_settings

    default = "filesystem://localhost/"
    assert f'default="{default}"' in open(project_settings.__file__).read()
    with caplog.at_level(logging.WARNING, logger="kombu.connection"):
        Connection(default).clone()
    assert "No hostname was supplied" not in caplog.text


def test_stop_children_stops_everything_without_killing():
    sleepers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
                for _ in range(3)]
    assert stop_children(sleepers) == []
    assert all(child.poll() is not None for child in sleepers)


@pytest.mark.django_db(transaction=True)
def test_setup_prints_numbered_stages_and_the_build_bar(monkeypatch, tmp_path, settings):
    """The model build is stood in for (its real run takes minutes): it reports steps
    the way the real builder does, and run_demo draws them as a bar."""
    from generation.management.commands import build_demo_model as command

    def fake_build(out, *, seed, steps, log):
        log("corpus: 10 conversations; tokenizer: 1024 tokens")
        for step in (50, 100):
            log(f"step {step}/100 loss 1.500 lr 3.00e-03 9,000 tok/s")
        return {"heldout_accuracy": 0.4}

    monkeypatch.setattr(command, "build_demo_model", fake_build)
    settings.DEMO_MODEL_DIR = tmp_path / "demo-base"
    out = io.StringIO()
    call_command("run_demo", "--no-serve", stdout=out)
    text = out.getvalue()
    for stage in ("[1/4] database", "[2/4] demo model", "[3/4] demo project"):
        assert stage in text
    assert "] step 50/100  50%  ETA" in text and "] step 100/100 100%  done" in text
    assert "prompts," in text and "setup done in" in text
