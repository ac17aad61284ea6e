"""Bad input fails at construction, with a message that says what to change."""

from __future__ import annotations

import pytest

from co2cb import ConfigError, Tracker


@pytest.mark.parametrize(
    ("options", "hint"),
    [
        ({"interval_s": 0.01}, "between 0.05 and 60"),
        ({"interval_s": 61}, "between 0.05 and 60"),
        ({"interval_s": "1"}, "between 0.05 and 60"),
        ({"scope": "proces"}, "'process' (default) or 'machine'"),
        ({"components": ["gpu", "disk"]}, "one or more of gpu, cpu, ram"),
        ({"components": []}, "one or more of gpu, cpu, ram"),
        ({"pue": 0.8}, "between 1.0 and 3.0"),
        ({"cpu_tdp_w": -5}, "greater than 0"),
        ({"ram_watts_per_gb": 0}, "greater than 0"),
        ({"gpus": ["cuda:0"]}, "CUDA ordinals"),
        ({"intensity": -3}, "between 0 and 1500"),
        ({"intensity": "low"}, "gCO2e/kWh as a number"),
    ],
)
def test_bad_option(options: dict[str, object], hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        Tracker(save=False, **options)  # type: ignore[arg-type]
    assert hint in str(info.value)


def test_unknown_option_is_refused_at_construction() -> None:
    with pytest.raises(TypeError, match="intervall"):
        Tracker(intervall=1.0)  # type: ignore[call-arg]


def test_defaults_work_offline_with_no_arguments(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    with Tracker() as tracker:
        pass
    assert tracker.result is not None
    assert tracker.run_folder is not None and tracker.run_folder.parent.name == "co2cb-runs"


def test_window_misuse_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    tracker = Tracker(save=False, intensity=100)
    assert tracker.end("never-opened") is None
    tracker.begin("epoch")  # not started: ignored with a warning
    with tracker:
        assert tracker.end("epoch") is None
        tracker.begin("step", record=False)
        tracker.begin("step")  # a step name used as a recorded window: refused, not raised
        tracker.end("step")
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "not open" in messages and "not running" in messages and "step window name" in messages


def test_option_list_is_the_tracker_signature() -> None:
    import inspect

    from co2cb.core.options import TRACKER_OPTIONS

    assert set(inspect.signature(Tracker.__init__).parameters) - {"self"} == TRACKER_OPTIONS
