"""The reference host: trains any ``gan_trainer.models`` model, resumably, on one or many processes.

Data flows one way: dataset -> ``BatchStream`` -> ``train_step`` (the model's losses,
our backward and optimizer steps) -> logs, sample grids and checkpoints in the run
directory.  Resuming restores the model (its controller state included), the optimizers, the
host's moving average of G, the step, every random generator and the position in the data order, so on the CPU a
resumed run ends with the same bits as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from began_plugin.data import build_dataset
from began_plugin.interface import optional_hook
from began_plugin.registry import create_model
from began_plugin.training import distributed
from began_plugin.training.checkpoint import CheckpointError, capture_rng, restore_rng, safe_load
from began_plugin.training.collapse import CollapseMonitor
from began_plugin.training.config import ConfigError, TrainConfig, option_notes, to_dict
from began_plugin.training.ema import GeneratorAverage, generator_swapped
from began_plugin.training.lr_schedule import LinearAnneal
from began_plugin.training.run_directory import RunDirectory
from began_plugin.training.step import train_step


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    interrupted: bool
    last_logs: dict[str, float]
    signal: int | None = None  # the signal that stopped an interrupted run


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device={name!r} was asked for but no CUDA GPU is visible; use device=cpu or device=auto."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={name!r} names GPU {device.index} but {torch.cuda.device_count()} are visible "
                f"(cuda:0 to cuda:{torch.cuda.device_count() - 1}); pick one of them."
            )
    elif device.type != "cpu":
        raise ConfigError(f"device={name!r} is not supported (tested: cpu and cuda); use auto, cpu, cuda or cuda:N.")
    return device


def _stream_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed derived from the run seed and a purpose, so streams never collide."""
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class BatchStream:
    """Batches in a seeded per-epoch order, resumable from any position.

    Epoch e's order is ``randperm`` drawn from a generator seeded by (seed, e), so the
    order does not depend on any other random state, and process r of w reads every
    w-th index of it.  ``position`` counts the batches handed out.  With ``num_workers`` > 0,
    a dataset read file by file (an image folder, torchvision's) is decoded by a ``DataLoader``'s
    worker processes, whose batch sampler walks the same order from ``position``; datasets held in
    memory are indexed directly.
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        seed: int,
        group: distributed.ProcessGroup,
        device: torch.device,
        channels_last: bool = False,
        num_workers: int = 0,
    ) -> None:
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.group, self.device, self.channels_last = group, device, channels_last
        self.per_epoch = (len(dataset) // group.world_size) // batch_size
        if self.per_epoch == 0:
            raise ConfigError(
                f"batch_size={batch_size} is larger than the {len(dataset) // group.world_size} images each of "
                f"the {group.world_size} process(es) gets from {dataset.name!r}; pass a smaller batch_size."
            )
        self.in_memory = getattr(dataset, "images", None) is not None
        self.num_workers = 0 if self.in_memory else num_workers
        self.position = 0
        self._epoch, self._order = -1, None
        self._loader, self._loader_position = None, -1

    def indices(self, position: int) -> torch.Tensor:
        epoch, b = divmod(position, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(_stream_seed(self.seed, 1, epoch))
            self._order = torch.randperm(len(self.dataset), generator=gen)[self.group.rank :: self.group.world_size]
            self._epoch = epoch
        return self._order[b * self.batch_size : (b + 1) * self.batch_size]

    def next(self) -> torch.Tensor:
        if self.num_workers > 0:
            batch = self._from_workers()
        else:
            idx = self.indices(self.position)
            if self.in_memory:
                batch = self.dataset.images[idx]
            else:
                batch = torch.stack([self.dataset[i] for i in idx.tolist()])
        self.position += 1
        batch = batch.to(self.device, non_blocking=True)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def _from_workers(self) -> torch.Tensor:
        if self._loader is None or self._loader_position != self.position:  # first use, or a resume moved us
            self.close()
            order = BatchStream(self.dataset, self.batch_size, self.seed, self.group, self.device)
            start = self.position

            def batches():
                position = start
                while True:
                    yield order.indices(position).tolist()
                    position += 1

            loader = torch.utils.data.DataLoader(
                self.dataset,
                batch_sampler=_Endless(batches),
                num_workers=self.num_workers,
                collate_fn=torch.stack,
                pin_memory=self.device.type == "cuda",
                # the workers' seeds from a generator of their own: the global one (z, dropout) is not touched
                generator=torch.Generator().manual_seed(_stream_seed(self.seed, 4, self.group.rank, start)),
            )
            self._loader, self._loader_position = iter(loader), start
        self._loader_position += 1
        return next(self._loader)

    def close(self) -> None:
        """Stop the worker processes, if any."""
        if self._loader is not None:
            self._loader._shutdown_workers()
            self._loader = None


class _Endless(torch.utils.data.Sampler):
    """A batch sampler over a generator function of index lists (it has no length: training counts steps)."""

    def __init__(self, batches) -> None:
        self.batches = batches

    def __iter__(self):
        return self.batches()


#: The signals that ask for a graceful stop: Ctrl-C, a scheduler's termination (Slurm sends SIGTERM or, with
#: --signal, SIGUSR2, before preemption) and a closed terminal.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR2") if hasattr(signal, name)
)


class StoppedAtOnce(KeyboardInterrupt):
    """A second stop signal while the first one's checkpoint was being written: the run ends at once."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signal = signum


#: The signal that stopped the latest run at once (see ``_StopRequest``), or None.
_stopped_at_once: int | None = None


def stopped_at_once() -> int | None:
    """The second stop signal of the latest run, if one came: whatever exception then ends ``train``
    (``StoppedAtOnce`` itself, or what a library made of it when it landed inside C++ code such as
    ``torch.save``) is that stop, and the host reports it as such."""
    return _stopped_at_once


class _StopRequest:
    """A stop signal asks the loop to finish the step, checkpoint and exit; a second one stops at once."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        global _stopped_at_once
        _stopped_at_once = None
        for sig in STOP_SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame) -> None:
        global _stopped_at_once
        if self.signal is not None:  # a second signal stops at once (every file on disk stays whole)
            _stopped_at_once = signum
            raise StoppedAtOnce(signum)
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


@dataclass
class _Run:
    """What ``train`` builds before its first step: every part of it can fail on bad input, none writes."""

    cfg: TrainConfig
    device: torch.device
    group: distributed.ProcessGroup
    model: torch.nn.Module
    optimizers: dict[str, torch.optim.Optimizer]
    stream: BatchStream
    fixed_z: torch.Tensor
    monitor: CollapseMonitor
    directory: RunDirectory
    record: dict[str, Any]
    average: GeneratorAverage | None
    anneal: LinearAnneal | None


def _prepare(cfg: TrainConfig) -> _Run:
    """Build the data, model, optimizers and host features, and check the run directory, writing nothing."""
    device = resolve_device(cfg.device)
    group = distributed.init_from_env(device)
    if group.active and device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
        torch.cuda.set_device(device)
    dataset = build_dataset(
        cfg.data.name,
        cfg.data.root,
        cfg.image_size,
        split=cfg.data.split,
        channels=cfg.data.channels,
        skip_bad_files=cfg.data.skip_bad_files,
    )
    _seed_everything(cfg.seed)
    try:
        model = create_model(cfg.model, image_size=cfg.image_size, channels=dataset.channels, **cfg.model_hparams)
    except ValueError as exc:  # the model's own check of its hyper-parameters
        raise ConfigError(f"model {cfg.model!r} refused its hyper-parameters: {exc}") from None
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizers = model.configure_optimizers()
    average = GeneratorAverage(model.generator, cfg.ema_decay) if cfg.ema_decay > 0 else None
    anneal = LinearAnneal(cfg.schedule_steps or cfg.steps, cfg.lr_anneal) if cfg.lr_anneal > 0 else None
    stream = BatchStream(dataset, cfg.batch_size, cfg.seed, group, device, cfg.channels_last, cfg.data.num_workers)
    fixed_z = model.sample_z(cfg.num_samples, generator=torch.Generator().manual_seed(_stream_seed(cfg.seed, 2)))
    monitor = CollapseMonitor.for_run(model, dataset, cfg.num_samples, enabled=group.is_main)
    directory = RunDirectory(Path(cfg.out), write=group.is_main)
    # The resolved facts a reader of the run needs and the configuration alone does not give.
    record = {
        **to_dict(cfg),
        "world_size": group.world_size,
        "image_channels": dataset.channels,
        "options_not_in_paper": option_notes(cfg),
    }
    directory.check(record, resume=cfg.resume)
    return _Run(cfg, device, group, model, optimizers, stream, fixed_z, monitor, directory, record, average, anneal)


def _restore(run: _Run) -> tuple[int, dict[str, Any] | None]:
    """The checkpoint's step and state applied to the model, optimizers, data order and average (0, None: fresh)."""
    if not (run.cfg.resume and run.directory.checkpoint_path.exists()):
        return 0, None
    path = run.directory.checkpoint_path
    # Read and applied before the first write, so a refused checkpoint leaves the directory as it was.
    state = safe_load(path, map_location=run.device)
    try:
        run.model.load_state_dict(state["model"])
        for name, opt in run.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        if run.average is not None:
            run.average.load_state_dict(state["generator_average"])
        run.stream.position = int(state["data_position"])
        return int(state["step"]), state
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"checkpoint {path} does not fit model {run.cfg.model!r} as configured "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); "
            f"resume with the configuration that wrote it, or start a new run in another out= directory."
        ) from None


def _start(run: _Run, step: int, state: dict[str, Any] | None) -> None:
    """Bring every process to the first step: the random streams, the log, the same weights everywhere."""
    if state is not None:
        restore_rng(state["rng"][run.group.rank])
        run.directory.truncate_log(step)
        return
    if run.cfg.resume:
        run.directory.truncate_log(0)  # killed before its first checkpoint: the log restarts with the run
    if run.group.active:
        distributed.broadcast_state(run.model)
        if run.average is not None:
            distributed.broadcast_state(run.average)
    # Each process draws its own latents; the same on every run with this seed.
    torch.manual_seed(_stream_seed(run.cfg.seed, 3, run.group.rank))


def train(cfg: TrainConfig, progress: bool = True, argv: list[str] | None = None) -> TrainResult:
    """Train ``cfg.model`` as ``cfg`` says; return where the run is and how far it got."""
    run = _prepare(cfg)
    if run.group.active:
        dist.barrier()  # every process has checked the directory before the main one writes to it
    step, state = _restore(run)
    run.directory.open(run.record, argv=argv)
    writer = bar = None
    try:
        _start(run, step, state)
        if cfg.compile:
            run.model.generator.compile()
            run.model.discriminator.compile()
        writer = run.directory.tensorboard(purge_step=step + 1 if cfg.resume else None)
        bar = tqdm(
            total=cfg.steps,
            initial=step,
            disable=not (progress and run.group.is_main),
            dynamic_ncols=True,
            desc=f"{cfg.model} {cfg.data.name}",
        )
        step, last, stopped = _steps(run, step, state is not None, writer, bar)
        bar.close()
        if writer is not None:
            writer.close()
        if stopped is not None and run.group.is_main:
            tqdm.write(
                f"Stopped by signal {stopped} at step {step}; checkpoint written. "
                f"Resume with the same command plus resume=true.",
                file=sys.stderr,
            )
        return TrainResult(Path(cfg.out), step, stopped is not None, last, stopped)
    finally:
        if bar is not None:
            bar.close()  # before an error message, never after it
        if writer is not None:
            writer.close()
        run.stream.close()
        run.directory.close()


def _steps(run: _Run, step: int, resumed: bool, writer, bar) -> tuple[int, dict[str, float], int | None]:
    """The training steps up to ``cfg.steps`` or a stop signal: (last step, last logged values, the signal)."""
    cfg, model, optimizers, group = run.cfg, run.model, run.optimizers, run.group
    sync_grads = distributed.average_gradients(group) if group.active else None
    reduce_logs = distributed.average_logs(group) if group.active else None
    autocast = (
        (lambda: torch.autocast(run.device.type, dtype=torch.bfloat16))
        if cfg.precision == "bf16"
        else contextlib.nullcontext
    )
    shown = tuple(optional_hook(model, "progress_keys")())
    last: dict[str, float] = {}
    tick, images = time.perf_counter(), 0
    saved = step if resumed else None  # the step of the last checkpoint on disk
    with _StopRequest() as stop:
        while step < cfg.steps:
            before = run.stream.position
            lr_scale = run.anneal.factor(step + 1) if run.anneal is not None else None
            logs = train_step(model, optimizers, run.stream.next, sync_grads, reduce_logs, autocast, lr_scale)
            if group.active:
                distributed.broadcast_buffers(model)  # batch norm statistics, the same on every process
            if run.average is not None:
                logs["ema_decay_effective"] = torch.tensor(run.average.update(model.generator))
            step += 1
            images += (run.stream.position - before) * cfg.batch_size * group.world_size
            bar.update(1)
            # One decision for every process (the checkpoint is a collective): a signal to any one stops all.
            signum = distributed.any_process(stop.signal or 0, run.device) if group.active else (stop.signal or 0)
            stop_now = signum != 0
            log_now = step % cfg.log_every == 0 or step == cfg.steps or stop_now
            sample_now = step % cfg.sample_every == 0 or step == cfg.steps or stop_now
            checkpoint_now = step % cfg.checkpoint_every == 0 or step == cfg.steps or stop_now
            if log_now or sample_now or checkpoint_now:  # never log, draw or save a diverged model
                last = {k: float(v) for k, v in logs.items()}
                _check_finite(cfg, last, step, run.directory, saved)
            if sample_now:  # before the log row, which carries the grid's sample_diversity
                _sample(run, step, writer)
            if log_now:
                now = time.perf_counter()
                row = {"step": step, **last, "images_per_s": images / max(now - tick, 1e-9)}
                for name, opt in optimizers.items():
                    row[f"lr_{name}"] = opt.param_groups[0]["lr"]
                row.update(run.monitor.observe_log(row))  # collapse warnings (training/collapse.py)
                run.directory.log(row, writer)
                tick, images = now, 0
                if shown:
                    bar.set_postfix({k: f"{last[k]:.4f}" for k in shown if k in last})
            if checkpoint_now:
                _checkpoint(run, step)
                saved = step
            if stop_now:
                return step, last, signum
    return step, last, None


def _check_finite(
    cfg: TrainConfig, last: dict[str, float], step: int, directory: RunDirectory, saved: int | None
) -> None:
    bad = [k for k, v in last.items() if not np.isfinite(v)]
    if bad:
        good = f"{directory.checkpoint_path} (step {saved})" if saved is not None else "none (none was written yet)"
        raise TrainingDiverged(
            f"model {cfg.model!r} produced a non-finite {', '.join(bad)} at step {step}; "
            f"the last good checkpoint is {good}, and resume=true would repeat the same steps, "
            f"so start a new run with a lower learning rate (e.g. model.lr=...)."
        )


def _sample(run: _Run, step: int, writer) -> None:
    """The fixed-z grid, from the average of G when there is one; eval mode, so batch norm does not move."""
    run.model.eval()
    with torch.no_grad(), generator_swapped(run.model, run.average) as model:
        grid = model.generate(run.fixed_z)
        run.directory.save_samples(step, grid, writer)
        run.monitor.observe_samples(step, grid)
    run.model.train()


def _checkpoint(run: _Run, step: int) -> None:
    rng = capture_rng()
    group = run.group
    if group.active:
        distributed.check_in_sync(run.model, group)
        gathered: list[Any] = [None] * group.world_size
        dist.all_gather_object(gathered, rng)
        rng_all = gathered
    else:
        rng_all = [rng]
    if group.is_main:
        state = {
            "model": run.model.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in run.optimizers.items()},
            "step": step,
            "data_position": run.stream.position,
            "rng": rng_all,
        }
        if run.average is not None:
            state["generator_average"] = run.average.state_dict()
        run.directory.save_checkpoint(state)
