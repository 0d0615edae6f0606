"""A PyTorch Lightning host for any ``gan_trainer.models`` model (``pip install 'began-plugin[lightning]'``).

    gan-lightning fit --model.name=began --model.hparams.gamma=0.7 --data.name=digits --trainer.max_steps=2000

``GANModule`` hosts a registered model with manual optimisation and runs the reference host's own step
(``training/step.py``: ``n_critic``, ``simultaneous``, each loss back-propagated into its own player's
parameters only, the logs averaged over processes before ``on_train_step_end``), so a model trains here
exactly as under ``gan-train``. ``trainer.global_step`` counts generator steps (only the generator's
optimizer is Lightning's), so ``max_steps`` means what ``steps=`` means to ``gan-train``.

Several processes: the players are not wrapped in ``DistributedDataParallel`` (its reducer refuses a
graph back-propagated twice, as BEGAN's shared forward and WGAN-GP's critic need; Lightning's own GAN
example fails under DDP for that reason). The strategy ``gan_ddp`` (chosen by ``gan-lightning`` whenever
more than one device is asked for) sets up the process group and leaves the modules alone; the module
averages gradients itself, as DDP would, and broadcasts buffers (batch norm statistics) from rank 0.

Checkpoints hold the model's own state (BEGAN's k_t and its rate rule), the moving average of G, the
optimizers, every process's random generators and the position in the data order, so a resumed fit
(``--ckpt_path``) ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.distributed as dist

try:
    import lightning.pytorch as pl
    from lightning.pytorch.cli import LightningCLI
    from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry
except ImportError as exc:  # an optional extra
    raise ImportError(
        f"the Lightning host needs the lightning extra ({exc}); install it with pip install 'began-plugin[lightning]'."
    ) from None

from began_plugin.data import build_dataset
from began_plugin.registry import load_model
from began_plugin.training import distributed
from began_plugin.training.checkpoint import capture_rng, restore_rng
from began_plugin.training.config import ConfigError, model_hparams
from began_plugin.training.ema import GeneratorAverage
from began_plugin.training.loop import BatchStream, _stream_seed
from began_plugin.training.lr_schedule import LinearAnneal
from began_plugin.training.step import train_step


def _group() -> distributed.ProcessGroup:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return distributed.ProcessGroup(dist.get_rank(), dist.get_world_size(), dist.get_rank())
    return distributed.ProcessGroup()


def batches_per_step(model) -> int:
    """How many real batches one generator step of ``model`` reads (``training/step.py``)."""
    return max(int(model.n_critic), 1)


class _StepBatches(torch.utils.data.IterableDataset):
    """An endless stream of step batches (``per_step x B x C x H x W``) in the reference host's resumable order."""

    def __init__(self, datamodule: GANDataModule) -> None:
        self.datamodule = datamodule

    def __iter__(self):
        dm = self.datamodule
        stream = BatchStream(dm.dataset, dm.batch_size, dm.seed, _group(), torch.device("cpu"))
        stream.position = dm.position
        while True:
            yield torch.stack([stream.next() for _ in range(dm.per_step)])


class GANDataModule(pl.LightningDataModule):
    """A dataset of ``began_plugin.data`` (``digits``, ``mnist5k``, ``folder``, torchvision's), as ``gan-train`` reads it.

    Each process reads its own shard of each epoch's seeded permutation; ``batch_size`` is per process.
    """

    def __init__(
        self,
        name: str = "digits",
        root: str | None = None,
        split: str = "train",
        image_size: int = 32,
        batch_size: int = 32,
        channels: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.name, self.root, self.split, self.image_size = name, root, split, image_size
        self.batch_size, self.requested_channels, self.seed = batch_size, channels, seed
        self.dataset = build_dataset(name, root, image_size, split=split, channels=channels)
        self.channels = self.dataset.channels
        self.per_step = 1  # set by the module: how many batches one generator step reads
        self.position = 0  # batches handed to training steps so far (the module keeps it in checkpoints)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(_StepBatches(self), batch_size=None, num_workers=0)


class GANModule(pl.LightningModule):
    """Hosts the registered model ``name`` with hyper-parameters ``hparams`` (checked against its ``Hparams``).

    ``ema_decay`` and ``lr_anneal`` are the reference host's features (a moving average of G's weights; every
    rate falling linearly to 0 over the last fraction of the run), off by default, for every model alike.
    ``schedule_steps``: the run length the anneal plans for (None: ``max_steps``); set it to the final step
    count when fitting in parts.
    """

    def __init__(
        self,
        name: str = "began",
        hparams: dict[str, Any] | None = None,
        image_size: int = 32,
        channels: int = 1,
        ema_decay: float = 0.0,
        lr_anneal: float = 0.0,
        schedule_steps: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        cls = load_model(name)
        self.resolved_hparams = model_hparams(cls, dict(hparams or {}))
        try:
            self.model = cls(image_size=image_size, channels=channels, **self.resolved_hparams)
        except ValueError as exc:
            raise ConfigError(f"model {name!r} refused its hyper-parameters: {exc}") from None
        if not 0.0 <= ema_decay < 1.0:
            raise ConfigError(f"ema_decay={ema_decay} must be in [0, 1); 0 samples from G itself.")
        if not 0.0 <= lr_anneal <= 1.0:
            raise ConfigError(f"lr_anneal={lr_anneal} must be in [0, 1]; 0 turns it off.")
        self.average = GeneratorAverage(self.model.generator, ema_decay) if ema_decay > 0 else None
        self.automatic_optimization = False
        self._pending_rng: dict[str, Any] | None = None

    # -- set-up --------------------------------------------------------------------------------
    def configure_optimizers(self):
        opts = self.model.configure_optimizers()
        return [opts["discriminator"], opts["generator"]]

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None:
            dm.per_step = batches_per_step(self.model)
            if dm.channels != self.model_channels:
                raise ConfigError(
                    f"the data has {dm.channels} channel(s) but the model was built for {self.model_channels}; "
                    f"pass --model.channels={dm.channels} (gan-lightning links them for you)."
                )

    @property
    def model_channels(self) -> int:
        return int(self.hparams["channels"])

    def on_train_start(self) -> None:
        if self._pending_rng is not None:  # a resumed fit continues every random stream where it stopped
            restore_rng(self._pending_rng)
            self._pending_rng = None
        else:  # each process draws its own latents, the same on every run with this seed
            group = _group()
            if group.active:
                distributed.broadcast_state(self.model)
            torch.manual_seed(_stream_seed(self.datamodule_seed(), 3, group.rank))

    def datamodule_seed(self) -> int:
        dm = getattr(self.trainer, "datamodule", None)
        return int(dm.seed) if dm is not None else 0

    # -- the step --------------------------------------------------------------------------------
    def training_step(self, batch: torch.Tensor, batch_idx: int):
        opt_d, opt_g = self.optimizers()
        # Only the generator's optimizer is Lightning's: global_step counts generator steps.
        optimizers = {"discriminator": opt_d.optimizer, "generator": opt_g}
        group = _group()
        reals = iter(batch.unbind(0))
        span = self.hparams["schedule_steps"] or self.trainer.max_steps
        anneal = LinearAnneal(span, self.hparams["lr_anneal"]) if self.hparams["lr_anneal"] else None
        logs = train_step(
            self.model,
            optimizers,
            lambda: next(reals),
            distributed.average_gradients(group) if group.active else None,
            distributed.average_logs(group) if group.active else None,
            contextlib.nullcontext,  # Lightning's precision plugin already autocasts the step
            anneal.factor(self.global_step + 1) if anneal is not None else None,
        )
        if group.active:
            distributed.broadcast_buffers(self.model)
        if self.average is not None:
            logs["ema_decay_effective"] = torch.tensor(self.average.update(self.model.generator))
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None:
            dm.position += dm.per_step
        # already averaged over processes by train_step, so no sync_dist here
        self.log_dict({k: v.float() for k, v in logs.items()}, on_step=True, prog_bar=False)
        return None

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Images from ``z``, through the moving average of G when there is one."""
        if self.average is None:
            return self.model.generate(z)
        own, self.model.generator = self.model.generator, self.average.average
        try:
            return self.model.generate(z)
        finally:
            self.model.generator = own

    # -- checkpoints ------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        group = _group()
        rng = capture_rng()
        if group.active:
            gathered: list[Any] = [None] * group.world_size
            dist.all_gather_object(gathered, rng)
            distributed.check_in_sync(self.model, group)
        else:
            gathered = [rng]
        dm = getattr(self.trainer, "datamodule", None)
        checkpoint["began_plugin"] = {"rng": gathered, "data_position": dm.position if dm is not None else 0}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("began_plugin")
        if state is None:
            return
        group = _group()
        if len(state["rng"]) == group.world_size:
            self._pending_rng = state["rng"][group.rank]
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None:
            dm.position = int(state["data_position"])


class GANDDPStrategy(DDPStrategy):
    """DDP's process group and launch, without wrapping the modules in ``DistributedDataParallel``.

    ``GANModule`` averages the gradients itself (one ``all_reduce`` per player per step, DDP's arithmetic)."""

    strategy_name = "gan_ddp"

    def configure_ddp(self) -> None:
        pass  # the LightningModule stays as it is; see the module docstring


StrategyRegistry.register(
    GANDDPStrategy.strategy_name,
    GANDDPStrategy,
    description="DDP's processes without DistributedDataParallel's reducer (GANs back-propagate a graph twice)",
    override=True,
)


class GANLightningCLI(LightningCLI):
    """``gan-lightning``: LightningCLI over ``GANModule`` and ``GANDataModule``, with the data's image size and
    channels linked into the model and ``gan_ddp`` chosen for several devices."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.image_size", "model.image_size")
        parser.link_arguments("data", "model.channels", compute_fn=lambda dm: dm.channels, apply_on="instantiate")
        parser.link_arguments("seed_everything", "data.seed")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config["trainer"]
        devices = trainer.get("devices", "auto")
        several = (isinstance(devices, int) and devices > 1) or (
            isinstance(devices, str) and devices not in ("auto", "1") and devices.strip("-").isdigit()
        )
        if trainer.get("num_nodes", 1) > 1:
            several = True
        if several and trainer.get("strategy", "auto") in ("auto", "ddp"):
            trainer["strategy"] = GANDDPStrategy.strategy_name


def main(args: list[str] | None = None) -> int:
    import sys

    from began_plugin.data import DataError
    from began_plugin.registry import RegistryError

    try:
        GANLightningCLI(
            GANModule,
            GANDataModule,
            seed_everything_default=0,
            args=args,
            trainer_defaults={"enable_model_summary": False},
        )
    except (ConfigError, RegistryError, DataError) as exc:  # one sentence, as gan-train gives
        print(f"gan-lightning: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
