"""Ray Train's ``TorchTrainer`` with 2 CPU workers on a local Ray cluster, measured by co2cb's callbacks.

Run by ``tests/test_ray_train.py``: ``python tests/scripts/ray_job.py --out OUT --powercap ROOT lightning hf``.
``ROOT`` is a fake powercap tree (``tests/fakes/powercap.py``); every training step each worker adds
``(rank + 1) * 7`` joules to its package counter between two barriers (``tests/scripts/ddp_train.py``'s
``Burner`` for Lightning, ``tests/scripts/hf_ddp.py``'s for the HF Trainer).

* ``lightning``: ``RayDDPStrategy`` and ``RayLightningEnvironment``, ``CO2Callback`` without
  ``output_dir``: the run folder belongs in the run's storage, ``OUT/storage/lightning/co2cb-runs``.
* ``hf``: the HF Trainer inside ``train_func``, ``CO2Callback(output_dir="hf-runs")``: a relative folder,
  taken under the run's storage (``OUT/storage/hf/hf-runs``), not under the worker's working directory.
* ``readme``: the README's Ray Train snippet, as written, run in ``OUT/readme`` on the same Ray cluster.

Each worker writes ``OUT/<framework>.rank<N>.json``: its joules per epoch, working directory and where
its callback's run folder is.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import runpy
from pathlib import Path

import ray
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

COMMON = {"scope": "machine", "components": ("cpu", "ram"), "intensity": 100, "interval_s": 0.05}


def _report(config: dict, framework: str, rank: int, added: dict, callback) -> None:
    folder = callback.co2.tracker.run_folder if callback.co2.tracker is not None else None
    out = Path(config["out"]) / f"{framework}.rank{rank}.json"
    out.write_text(json.dumps({"rank": rank, "added": added, "cwd": os.getcwd(), "run_folder": str(folder)}))


def lightning_func(config: dict) -> None:
    """Lightning with Ray's DDP strategy and environment."""
    import lightning.pytorch as pl
    import torch
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, prepare_trainer
    from torch.utils.data import DataLoader, TensorDataset

    from co2cb.lightning import CO2Callback
    from tests.scripts.ddp_train import Burner

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 16, generator=g)
    y = (x[:, 0] > 0).long()
    powercap = Path(config["powercap"])
    model = Burner(powercap / "intel-rapl:0" / "energy_uj", powercap / "lock", 7)
    callback = CO2Callback(run_name="ray-lightning", powercap_root=str(powercap), **COMMON)
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices="auto",
        strategy=RayDDPStrategy(),
        plugins=[RayLightningEnvironment()],
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer = prepare_trainer(trainer)
    trainer.fit(model, DataLoader(TensorDataset(x, y), batch_size=16))
    _report(config, "lightning", trainer.global_rank, {str(k): v for k, v in model.added.items()}, callback)


def hf_func(config: dict) -> None:
    """The Hugging Face Trainer inside ``train_func``."""
    import torch
    import torch.distributed as dist
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    from co2cb.hf import CO2Callback
    from tests.scripts.hf_ddp import Burner, Tokens

    torch.set_num_threads(1)
    torch.manual_seed(0)
    powercap = Path(config["powercap"])
    model = BertForSequenceClassification(
        BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=100)
    )
    args = TrainingArguments(
        output_dir=str(Path(config["out"]) / "hf-trainer"),
        num_train_epochs=2,
        per_device_train_batch_size=4,
        logging_steps=2,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    callback = CO2Callback(run_name="ray-hf", powercap_root=str(powercap), output_dir="hf-runs", **COMMON)
    burner = Burner(powercap / "intel-rapl:0" / "energy_uj", 7)
    trainer = Trainer(model=model, args=args, train_dataset=Tokens(32), callbacks=[callback, burner])
    trainer.train()
    _report(config, "hf", dist.get_rank(), {str(k): v for k, v in burner.added.items()}, callback)


def run_readme_snippet(folder: Path) -> None:
    """Run the README's Ray Train snippet as written, in ``folder``."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (snippet,) = [s for s in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "TorchTrainer" in s]
    folder.mkdir(parents=True)
    (folder / "snippet.py").write_text(snippet)
    os.chdir(folder)
    runpy.run_path(str(folder / "snippet.py"), run_name="__main__")  # pickled by value for the workers
    print("ray_job: readme done", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--powercap", type=Path, required=True)
    p.add_argument("--ray-temp", help="Ray's session folder (keep it short: it holds Unix sockets)")
    p.add_argument("frameworks", nargs="+", choices=["lightning", "hf", "readme"])
    opts = p.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=opts.ray_temp)
    funcs = {"lightning": lightning_func, "hf": hf_func}
    for name in opts.frameworks:
        if name == "readme":
            run_readme_snippet(opts.out / "readme")
            continue
        trainer = TorchTrainer(
            funcs[name],
            train_loop_config={"out": str(opts.out), "powercap": str(opts.powercap)},
            scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
            run_config=RunConfig(storage_path=str(opts.out / "storage"), name=name),
        )
        trainer.fit()
        print(f"ray_job: {name} done", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
