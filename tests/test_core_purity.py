"""The core imports no ML framework, and its hot path does no I/O."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import co2cb

FRAMEWORKS = ("torch", "lightning", "pytorch_lightning", "transformers", "keras", "tensorflow", "jax")
CORE = Path(co2cb.__file__).parent
ADAPTER_SHIMS = ("lightning.py", "pytorch_lightning.py", "hf.py", "keras.py")  # public import paths of adapters
# Training jobs that show co2cb at work: they import torch and Lightning, and only `co2cb demo` (once it
# has checked they are installed) and the notebooks import them; the next test keeps them out of the CLI's imports.
EXAMPLES = "examples/"


def test_importing_and_using_the_core_loads_no_framework() -> None:
    code = (
        "import sys, co2cb; t = co2cb.Tracker(save=False, intensity=1).start(); t.stop(); "
        f"print([m for m in {FRAMEWORKS!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_command_line_loads_no_framework_until_the_demo_runs() -> None:
    code = (
        "import sys; from co2cb.cli.main import build_parser; build_parser(); "
        f"print([m for m in (*{FRAMEWORKS!r}, 'co2cb.examples') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_only_the_meter_modules_touch_hardware() -> None:
    for path in CORE.rglob("*.py"):
        rel = path.relative_to(CORE).as_posix()
        if rel.startswith(("integrations/", EXAMPLES)) or rel in ADAPTER_SHIMS:
            continue
        source = path.read_text()
        tree = ast.parse(source)
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not imported & set(FRAMEWORKS), f"{rel} imports a framework"
        if rel != "meters/nvml.py":
            assert "pynvml" not in imported and '"pynvml"' not in source, f"{rel} calls pynvml"
        for library, owner in (("amdsmi", "meters/amd.py"), ("zeus_apple_silicon", "meters/apple.py")):
            if rel != owner:
                assert library not in imported and f'"{library}"' not in source, f"{rel} calls {library}"
        if rel not in ("meters/rapl.py",):
            assert "/sys/class/powercap" not in source.replace("``/sys/class/powercap``", ""), rel
        if not rel.startswith("meters/"):
            assert "psutil" not in imported, f"{rel} reads process tables outside the meters"
