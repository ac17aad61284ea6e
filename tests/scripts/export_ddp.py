"""A tiny Lightning DDP job on CPU (2 ranks, gloo) whose CO2Callback is asked to serve and push live metrics.

Run by ``tests/test_export_ddp.py`` as a subprocess (Lightning's ``ddp`` strategy starts rank 1 by running
this script again, with the same arguments); ``CO2CB_POWERCAP_ROOT`` points at a fake powercap tree.
Every rank gets the same ``prometheus_port`` and ``pushgateway``: only local rank 0 may use them.

Writes ``--out/rank<N>.json`` per rank: its ranks, pid, the tracker's ``prometheus_url`` during training,
whether it exports at all, and, on global rank 0, what its endpoint served at the end of the first training
epoch (parsed by ``prometheus_client``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from pathlib import Path

import lightning.pytorch as pl
import torch
from prometheus_client.parser import text_string_to_metric_families
from torch.utils.data import DataLoader, TensorDataset

from co2cb.lightning import CO2Callback


class Tiny(pl.LightningModule):
    """A small classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(8, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Scrape(pl.Callback):
    """At the end of the first training epoch: note where the rank serves; on global rank 0, read that endpoint."""

    def __init__(self, co2: CO2Callback) -> None:
        self.co2 = co2
        self.url: str | None = None
        self.samples: list[dict[str, object]] | None = None
        self.done = False

    def on_train_epoch_end(self, trainer, pl_module):
        tracker = self.co2.co2.tracker
        if self.done or tracker is None:
            return
        self.done = True
        self.url = tracker.prometheus_url
        if trainer.global_rank != 0 or not tracker.prometheus_url:
            return
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(tracker.prometheus_url, timeout=10) as response:
            text = response.read().decode()
        self.samples = [
            {"name": s.name, "labels": s.labels, "value": s.value}
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--port", type=int, required=True, help="prometheus_port given to every rank")
    p.add_argument("--pushgateway", required=True, help="pushgateway given to every rank")
    args = p.parse_args(argv)

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 8, generator=g)
    y = (x[:, 0] > 0).long()
    co2 = CO2Callback(
        run_name="ddp-export",
        output_dir=str(args.out / "runs"),
        interval_s=0.05,
        region="FR",
        scope="machine",
        prometheus_port=args.port,
        pushgateway=args.pushgateway,
    )
    scrape = Scrape(co2)
    trainer = pl.Trainer(
        accelerator="cpu",
        strategy="ddp",
        devices=2,
        max_epochs=2,
        callbacks=[co2, scrape],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(Tiny(), DataLoader(TensorDataset(x, y), batch_size=16))
    tracker = co2.co2.tracker
    report = {
        "rank": trainer.global_rank,
        "local_rank": trainer.local_rank,
        "pid": os.getpid(),
        "prometheus_url": scrape.url,  # during training (the endpoint closes when fitting ends)
        "exports": tracker is not None and tracker.config.export.wanted,
        "scraped": scrape.samples,
    }
    (args.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
