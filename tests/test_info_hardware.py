"""`co2cb info` shows each accelerator library's finding: the meters chosen, or why each vendor has none."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from co2cb import Tracker
from co2cb.records.reader import load_run
from co2cb.report.statement import statement

from .cli import run_cli
from .fakes import Constant, FakeAmdGpu, FakeGpu, FakeSoc, MakeFake
from .fakes.fake_pynvml_mig import NVML_DEVICE_MIG_ENABLE, FakeMig


@pytest.fixture(autouse=True)
def _region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CO2CB_REGION", "FR")


def test_nvidia_module_power_limit_and_mig(nvml: MakeFake, capsys: pytest.CaptureFixture[str]) -> None:
    nvml(
        FakeGpu(
            name="NVIDIA GH200 480GB",
            uuid="GPU-aa",
            power=Constant(300.0),
            module_power=Constant(520.0),
            reports="module",
            power_limit_w=900.0,
        ),
        FakeGpu(
            name="NVIDIA A100-SXM4-80GB",
            uuid="GPU-bb",
            power_limit_w=400.0,
            mig_mode=NVML_DEVICE_MIG_ENABLE,
            mig_devices=[FakeMig("MIG-1"), FakeMig("MIG-2", gpu_instance_id=2)],
        ),
    )
    code, out, _ = run_cli(["info"], capsys)
    assert code == 0
    assert (
        "GPU 0: NVIDIA GH200 480GB GPU-aa, energy counter: yes, power limit 900 W, power scope: module (module 520 W)"
    ) in out
    assert "GPU 1: NVIDIA A100-SXM4-80GB GPU-bb, energy counter: yes, power limit 400 W, MIG on: 2 slice(s)" in out
    assert "  AMD: not looked for: NVIDIA GPUs are measured" in out
    assert "  cpu: none\n       counted in gpu:0: that figure covers the whole module" in out
    assert "  gpu: gpu:0, gpu:1\n       2 of 2 GPU(s) by all GPUs NVML reports" in out


def test_amd_gpus_and_why_nvidia_has_none(amd: Any, capsys: pytest.CaptureFixture[str]) -> None:
    amd(FakeAmdGpu(power=Constant(350.0), compute_partition="CPX"))
    code, out, _ = run_cli(["info"], capsys)
    assert code == 0
    (line,) = [x for x in out.splitlines() if x.startswith("GPU 0:")]
    assert line.startswith("GPU 0: AMD Instinct MI300X GPU-bd8dd4b0a3b5a9c8, energy counter: yes (accumulator ")
    assert line.endswith(", power limit 750 W, compute partition CPX: energy is the whole package's")
    assert "  NVIDIA: nvidia-ml-py is not installed (pip install nvidia-ml-py)" in out
    assert (
        "  gpu: amdgpu:0\n       AMD SMI: 1 of 1 AMD GPU(s) by all (HIP index (AMD SMI enumeration info); 7.0.2)" in out
    )
    found = json.loads(run_cli(["info", "--json"], capsys)[1])
    assert found["gpus"][0]["power_key"] == "socket_power"
    assert set(found["accelerators"]) == {"NVIDIA", "AMD", "Apple silicon"}


def test_apple_silicon(apple: Any, capsys: pytest.CaptureFixture[str]) -> None:
    apple(FakeSoc())
    code, out, _ = run_cli(["info", "--scope", "machine"], capsys)
    assert code == 0
    assert "  Apple silicon: Apple M2 Max, zeus-apple-silicon unknown version: apple:cpu, apple:gpu" in out
    assert "  gpu: apple:gpu, apple:ane\n" in out
    assert "  cpu: apple:cpu\n       apple:cpu (whole machine)" in out
    assert "  ram: apple:dram\n" in out


def test_no_accelerator_anywhere(nvml: MakeFake, capsys: pytest.CaptureFixture[str]) -> None:
    nvml()
    code, out, _ = run_cli(["info"], capsys)
    assert code == 0
    assert "Accelerators:\n  NVIDIA: NVML found no GPU\n  AMD: amdsmi is not installed" in out
    assert "  gpu: none\n       see Accelerators above" in out


# --------------------------------------------------------------------- the statement names each meter's method
def _methods(tracker: Tracker) -> dict[str, str]:
    assert tracker.run_folder is not None
    (run,) = statement([load_run(tracker.run_folder)]).runs
    return {p.component: p.method for p in run.parts}


def test_statement_methods_of_amd_and_apple(amd: Any, apple: Any, tmp_path: Path) -> None:
    amd(FakeAmdGpu(), FakeAmdGpu(bdf="0000:1c:00.0", unique_id=1, counter_frozen=True))
    apple(FakeSoc())
    tracker = Tracker(output_dir=tmp_path, scope="machine", interval_s=0.05, region="FR")
    with tracker:
        time.sleep(0.1)
    methods = _methods(tracker)
    assert methods["gpu"] == (
        "AMD SMI energy accumulator (amdsmi_get_energy_count) of the AMD Instinct MI300X; "
        "AMD SMI socket power (socket_power) of the AMD Instinct MI300X, sampled every 0.05 s"
    )
    assert (
        methods["cpu"]
        == "Apple silicon energy counter of all CPU clusters (IOReport 'CPU Energy'), via zeus-apple-silicon"
    )


def test_statement_method_of_a_module_figure(nvml: MakeFake, tmp_path: Path) -> None:
    nvml(FakeGpu(name="NVIDIA GH200 480GB", module_power=Constant(500.0), reports="module"))
    tracker = Tracker(output_dir=tmp_path, scope="machine", interval_s=0.05, region="FR")
    with tracker:
        time.sleep(0.1)
    methods = _methods(tracker)
    assert methods == {"gpu": "NVML energy counter of the NVIDIA GH200 480GB module (GPU, CPU and memory)"}
