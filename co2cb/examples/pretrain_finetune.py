"""Pretraining against fine-tuning, each measured by co2cb's Lightning callback (``co2cb demo``).

The classic case, SetFit's: pretraining a model from scratch costs far more than fine-tuning a copy
of it on a small labelled task. Here on generated data and the CPU, nothing downloaded:

* the "language": token sequences from 4 topics, each topic a Markov chain over 32 tokens;
* **pretrain**: a small transformer encoder learns to fill in masked tokens (15 %) of unlabelled
  sequences; its quality is the masked-token accuracy ``val_masked_acc``;
* **finetune**: a copy of the pretrained encoder under a new head learns the topic of a few labelled
  sequences; its quality is ``val_acc``;
* **scratch**: the same classifier on the same labelled sequences and epochs, from a fresh random encoder:
  the baseline that shows what the pretraining buys (``val_acc`` again, so the two share the quality axis).

Each stage is one ``Trainer.fit`` with a :class:`co2cb.lightning.CO2Callback` (run name, tags, the
quality metric in ``monitor``) and a ``TensorBoardLogger``: each leaves a run folder, and TensorBoard
event files that hold energy and CO2 next to the loss.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.nn import functional
from torch.utils.data import DataLoader, TensorDataset

from co2cb.lightning import CO2Callback
from co2cb.units import format_energy, format_mass

VOCAB = 32
MASK = VOCAB  # id of the mask token, one past the vocabulary
IGNORE = -100  # target of the positions the loss skips
SEQ_LEN = 32
TOPICS = 4
MASK_RATE = 0.15
WIDTH = 64
PRETRAIN, FINETUNE, SCRATCH = "pretrain", "finetune", "scratch"
MODEL_TAG = f"transformer encoder, 2 layers x {WIDTH} wide"
DATA_TAG = f"generated: {TOPICS} Markov-chain topics over {VOCAB} tokens, length {SEQ_LEN}"


@dataclass(frozen=True)
class Plan:
    """How much each stage trains.

    Attributes:
        pretrain_sequences: Unlabelled training sequences of the pretraining.
        finetune_sequences: Labelled training sequences of the fine-tuning (and of the training from scratch).
        val_sequences: Validation sequences of each stage.
        epochs: Epochs of each stage (over its own data).
        batch_size: Sequences per batch.
        log_every_n_steps: Lightning's logging cadence (co2cb logs step energy and CO2 at it), at most
            once an epoch.
    """

    pretrain_sequences: int = 12288
    finetune_sequences: int = 256
    val_sequences: int = 512
    epochs: int = 6
    batch_size: int = 64
    log_every_n_steps: int = 16


QUICK = Plan(
    pretrain_sequences=512, finetune_sequences=128, val_sequences=128, epochs=2, batch_size=32, log_every_n_steps=4
)


@dataclass(frozen=True)
class Stage:
    """What one stage left behind.

    Attributes:
        name: ``"pretrain"``, ``"finetune"`` or ``"scratch"`` (also the run name and the TensorBoard run).
        run_folder: The co2cb run folder.
        log_dir: The TensorBoard log folder of this stage.
        seconds: Duration of the fit, seconds.
        kwh: Energy of the fit, kWh.
        co2_kg: Emissions of the fit, kg CO2e.
        metrics: Final value of the monitored quality metric(s).
    """

    name: str
    run_folder: Path
    log_dir: Path
    seconds: float
    kwh: float
    co2_kg: float
    metrics: dict[str, float]

    def summary(self) -> str:
        """One line: duration, energy, CO2 and quality."""
        quality = ", ".join(f"{k} {v:.3f}" for k, v in self.metrics.items())
        return (
            f"{self.name}: {self.seconds:.1f} s, {format_energy(self.kwh)}, {format_mass(self.co2_kg)} CO2e, {quality}"
        )


class Stages(NamedTuple):
    """The three runs of :func:`pretrain_then_finetune`, in the order they ran."""

    pretrain: Stage
    finetune: Stage
    scratch: Stage


# ---------------------------------------------------------------------------- data
def topic_chains(seed: int) -> torch.Tensor:
    """Each topic's next-token probabilities, shape ``(TOPICS, VOCAB, VOCAB)`` (peaked: a learnable language)."""
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(3 * torch.randn(TOPICS, VOCAB, VOCAB, generator=g), dim=-1)


def sequences(n: int, chains: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` token sequences ``(n, SEQ_LEN)`` and the topic each was drawn from ``(n,)``."""
    g = torch.Generator().manual_seed(seed)
    topics = torch.randint(TOPICS, (n,), generator=g)
    tokens = torch.empty(n, SEQ_LEN, dtype=torch.long)
    tokens[:, 0] = torch.randint(VOCAB, (n,), generator=g)
    for t in range(1, SEQ_LEN):
        tokens[:, t] = torch.multinomial(chains[topics, tokens[:, t - 1]], 1, generator=g).squeeze(1)
    return tokens, topics


def mask_tokens(tokens: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide ``MASK_RATE`` of the tokens: the masked input, and the targets (``IGNORE`` where nothing was hidden)."""
    hidden = torch.rand(tokens.shape, generator=generator) < MASK_RATE
    return tokens.masked_fill(hidden, MASK), tokens.masked_fill(~hidden, IGNORE)


def _loaders(train: tuple[torch.Tensor, ...], val: tuple[torch.Tensor, ...], batch_size: int) -> tuple[DataLoader, ...]:
    return (
        DataLoader(TensorDataset(*train), batch_size=batch_size, shuffle=True),
        DataLoader(TensorDataset(*val), batch_size=batch_size),
    )


# ---------------------------------------------------------------------------- models
class Encoder(nn.Module):
    """A small pre-norm transformer encoder: token and position embeddings, 2 self-attention layers."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(VOCAB + 1, WIDTH)
        self.positions = nn.Parameter(torch.randn(SEQ_LEN, WIDTH))  # as large as the token embeddings: learns faster
        layer = nn.TransformerEncoderLayer(
            WIDTH, nhead=4, dim_feedforward=4 * WIDTH, dropout=0.0, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, num_layers=2, norm=nn.LayerNorm(WIDTH), enable_nested_tensor=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(batch, SEQ_LEN, WIDTH)``."""
        return self.layers(self.tokens(tokens) + self.positions)


class MaskedTokens(pl.LightningModule):
    """Pretraining: fill in masked tokens (a fresh mask every batch)."""

    def __init__(self, lr: float = 2e-3) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.head = nn.Linear(WIDTH, VOCAB)
        self.lr = lr

    def _step(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(self.encoder(inputs))
        return functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1), ignore_index=IGNORE), logits

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """One optimisation step; returns the loss."""
        loss, _ = self._step(*mask_tokens(batch[0]))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Log the validation loss and accuracy of a batch."""
        inputs, targets = batch
        loss, logits = self._step(inputs, targets)
        hidden = targets != IGNORE
        self.log("val_loss", loss)
        self.log("val_masked_acc", (logits.argmax(-1)[hidden] == targets[hidden]).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW at the module's learning rate."""
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


class TopicClassifier(pl.LightningModule):
    """The topic of a sequence, from an encoder's mean hidden state under a new head (pretrained or fresh encoder)."""

    def __init__(self, encoder: Encoder, lr: float = 1e-3) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(WIDTH, TOPICS)
        self.lr = lr

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Topic logits ``(batch, TOPICS)``."""
        return self.head(self.encoder(tokens).mean(dim=1))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """One optimisation step; returns the loss."""
        tokens, topics = batch
        loss = functional.cross_entropy(self(tokens), topics)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Log the validation loss and accuracy of a batch."""
        tokens, topics = batch
        logits = self(tokens)
        self.log("val_loss", functional.cross_entropy(logits, topics))
        self.log("val_acc", (logits.argmax(-1) == topics).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW at the module's learning rate."""
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


# ---------------------------------------------------------------------------- training
@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Hide Lightning's start-up lines, its data-loader advice and its deprecation notice.

    The advice to use more data-loader workers is given on machines of more than 2 CPUs (moot for tensors
    in memory); the deprecation notice comes under torch 2.13 (Lightning 2.6).
    """
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers")
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
            yield
    finally:
        logger.setLevel(level)


def fit_stage(
    module: pl.LightningModule,
    loaders: tuple[DataLoader, ...],
    *,
    name: str,
    tags: dict[str, Any],
    monitor: str,
    plan: Plan,
    output_dir: Path,
    **tracker_options: Any,
) -> Stage:
    """Train ``module`` on the CPU with a CO2Callback and a TensorBoard logger under ``output_dir``.

    Args:
        module: The model to train.
        loaders: Training and validation loaders.
        name: Run name, also the TensorBoard run's name.
        tags: Labels of the run record.
        monitor: The quality metric recorded with the run.
        plan: Epochs and logging cadence.
        output_dir: Gets ``runs/`` (co2cb run folders) and ``tensorboard/``.
        **tracker_options: More :class:`co2cb.Tracker` options (``region``, ``interval_s``...).
    """
    callback = CO2Callback(  # with the per-step series and the detail: the demo shows every value
        run_name=name,
        tags=tags,
        monitor=[monitor],
        output_dir=output_dir / "runs",
        log_steps=True,
        log_detail=True,
        **tracker_options,
    )
    logger = TensorBoardLogger(output_dir / "tensorboard", name=name, default_hp_metric=False)
    with _quiet_lightning():
        trainer = pl.Trainer(
            max_epochs=plan.epochs,
            accelerator="cpu",
            devices=1,
            logger=logger,
            callbacks=[callback],
            log_every_n_steps=min(plan.log_every_n_steps, len(loaders[0])),
            num_sanity_val_steps=0,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=output_dir,
        )
        trainer.fit(module, train_dataloaders=loaders[0], val_dataloaders=loaders[1])
    tracker = callback.co2.tracker
    if tracker is None or tracker.result is None or tracker.run_folder is None:
        raise RuntimeError(f"co2cb did not measure the {name} run (see the warnings above)")
    run = tracker.result
    return Stage(
        name,
        tracker.run_folder,
        Path(logger.log_dir),
        run.seconds,
        run.kwh,
        run.co2_kg,
        dict(callback.co2.final_metrics),
    )


def pretrain_then_finetune(
    output_dir: str | Path,
    plan: Plan | None = None,
    seed: int = 0,
    echo: Callable[[str], None] = print,
    **tracker_options: Any,
) -> Stages:
    """Pretrain, fine-tune a copy, and train the same classifier from scratch, for comparison.

    The encoder is pretrained by masked tokens; a copy is fine-tuned on topic classification; the same
    classifier is trained from a fresh random encoder on the same labelled data.

    Args:
        output_dir: Folder for the stages' run folders (``runs/``) and TensorBoard logs (``tensorboard/``).
        plan: Data sizes and epochs (default :class:`Plan`).
        seed: Seed of the generated language, data and weights.
        echo: Where progress lines go.
        **tracker_options: Options for each stage's :class:`co2cb.Tracker` (``region``, ``pue``...).

    Returns:
        The pretraining, the fine-tuning and the training from scratch.
    """
    output_dir, plan = Path(output_dir), plan or Plan()
    torch.manual_seed(seed)
    chains = topic_chains(seed)
    split = plan.val_sequences
    unlabelled, _ = sequences(plan.pretrain_sequences + split, chains, seed + 1)
    val_inputs, val_targets = mask_tokens(unlabelled[:split], torch.Generator().manual_seed(seed))
    pretrain_data = _loaders((unlabelled[split:],), (val_inputs, val_targets), plan.batch_size)
    tokens, topics = sequences(plan.finetune_sequences + split, chains, seed + 2)
    labelled = (tokens[split:], topics[split:]), (tokens[:split], topics[:split])
    classifier_tags = {
        "objective": f"topic classification ({TOPICS} classes)",
        "model": MODEL_TAG,
        "data": DATA_TAG,
        "sequences": plan.finetune_sequences,
    }

    echo(
        f"{PRETRAIN}: masked-token pretraining from scratch on {plan.pretrain_sequences} unlabelled sequences, "
        f"{plan.epochs} epochs"
    )
    pretrained = MaskedTokens()
    pretrain = fit_stage(
        pretrained,
        pretrain_data,
        name=PRETRAIN,
        monitor="val_masked_acc",
        plan=plan,
        output_dir=output_dir,
        tags={
            "stage": PRETRAIN,
            "objective": "masked tokens",
            "init": "random",
            "model": MODEL_TAG,
            "data": DATA_TAG,
            "sequences": plan.pretrain_sequences,
        },
        **tracker_options,
    )
    echo(pretrain.summary())

    echo(
        f"{FINETUNE}: a copy of the pretrained encoder learns the topic of {plan.finetune_sequences} labelled "
        f"sequences, {plan.epochs} epochs"
    )
    finetune = fit_stage(
        TopicClassifier(copy.deepcopy(pretrained.encoder)),
        _loaders(*labelled, plan.batch_size),
        name=FINETUNE,
        monitor="val_acc",
        plan=plan,
        output_dir=output_dir,
        tags={"stage": FINETUNE, "init": PRETRAIN, **classifier_tags},
        **tracker_options,
    )
    echo(finetune.summary())

    echo(
        f"{SCRATCH}: the same classifier from a fresh random encoder, on the same {plan.finetune_sequences} "
        f"labelled sequences, {plan.epochs} epochs"
    )
    torch.manual_seed(seed + 3)
    scratch = fit_stage(
        TopicClassifier(Encoder()),
        _loaders(*labelled, plan.batch_size),
        name=SCRATCH,
        monitor="val_acc",
        plan=plan,
        output_dir=output_dir,
        tags={"stage": SCRATCH, "init": "random", **classifier_tags},
        **tracker_options,
    )
    echo(scratch.summary())
    return Stages(pretrain, finetune, scratch)
