"""The notebook runs as stored, so it cannot rot: executed with nbclient on tiny data in a temporary folder.

The stored notebook keeps its outputs (a reader sees the plots on GitHub). To refresh them after a change,
from the repository root::

    .venv/bin/python -c "import nbformat, nbclient, tempfile; p = 'notebooks/compare_pretraining_finetuning.ipynb'; \
nb = nbformat.read(p, 4); nbclient.NotebookClient(nb, resources={'metadata': {'path': tempfile.mkdtemp()}}).execute(); \
nbformat.write(nb, p)"
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from co2cb.cli import demo
from co2cb.records.reader import find_runs

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
for _module in demo.NEEDS:
    pytest.importorskip(_module)

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "compare_pretraining_finetuning.ipynb"
MAX_STORED_BYTES = 300_000
PNG = "image/png"


def _images(nb: object) -> list[bytes]:
    return [
        base64.b64decode(o["data"][PNG])
        for c in nb.cells
        if c.cell_type == "code"  # type: ignore[attr-defined]
        for o in c.get("outputs", [])
        if PNG in o.get("data", {})
    ]


@pytest.mark.slow
def test_the_notebook_runs_and_shows_its_plots_inline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CO2CB_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("CO2CB_REGION", "FR")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    images = _images(nb)
    assert len(images) == 2 and all(i.startswith(b"\x89PNG") for i in images)  # comparison, TensorBoard series
    out = tmp_path / "co2cb-notebook"
    runs = {r.name: r for r in find_runs([out / "runs"])}
    assert runs["pretrain"].final_metrics.keys() == {"val_masked_acc"}
    assert runs["finetune"].final_metrics.keys() == runs["scratch"].final_metrics.keys() == {"val_acc"}
    assert runs["scratch"].header["tags"]["init"] == "random"
    assert all(r.status == "completed" and r.co2_kg > 0 for r in runs.values())
    assert (out / "report.html").is_file()
    assert {p.name for p in (out / "tensorboard").iterdir()} == {"pretrain", "finetune", "scratch"}
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "Traceback" not in text


def test_the_stored_notebook_is_executed_and_small() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "store the notebook executed (see this module's docstring)"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert len(_images(nb)) == 2
    assert NOTEBOOK.stat().st_size < MAX_STORED_BYTES
