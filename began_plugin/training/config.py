"""The trainer's configuration: one source of defaults, ``key=value`` overrides through OmegaConf.

``model=NAME`` picks a registered model and ``model.KEY=VALUE`` sets one of its
hyper-parameters (checked against the model's ``Hparams`` dataclass); ``data=NAME``
picks a dataset and ``data.KEY=VALUE`` sets its options; every other key is a field of
``TrainConfig``.  Errors are one sentence that names the key and the nearest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from began_plugin.data import DATASETS


class ConfigError(ValueError):
    """A bad command-line value: the message is one sentence for the user."""


@dataclass
class DataConfig:
    name: str = "digits"  # one of began_plugin.data.DATASETS
    root: Optional[str] = None  # where torchvision datasets / the image folder live
    split: str = "train"
    channels: Optional[int] = None  # None: the data's own; 1 or 3 (image folders convert, others must match)
    skip_bad_files: bool = False  # image folders: skip unreadable files instead of stopping
    num_workers: int = 0


@dataclass
class TrainConfig:
    model: str = "began"  # a name registered under gan_trainer.models
    data: DataConfig = field(default_factory=DataConfig)
    steps: int = 2000  # generator steps
    # The run length that step-relative preset settings (BEGAN's rate anneal on the digits) plan for;
    # None: `steps`.  Set it to the final step count when training in parts with resume=true.
    schedule_steps: Optional[int] = None
    batch_size: int = 32  # per process
    image_size: int = 32
    seed: int = 0
    out: str = "runs/began-digits"  # run directory
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    resume: bool = False  # continue the run in `out` exactly where it stopped
    log_every: int = 10  # steps between metric log lines
    sample_every: int = 250  # steps between sample grids (and at the end)
    checkpoint_every: int = 250  # steps between checkpoints (and at the end)
    num_samples: int = 64  # images in each sample grid
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    compile: bool = False  # torch.compile the generator and discriminator
    channels_last: bool = False
    model_hparams: dict[str, Any] = field(default_factory=dict)  # filled from model.KEY=VALUE


def _span(cfg: "TrainConfig") -> int:
    return cfg.schedule_steps or cfg.steps


_SMALL_BEGAN = {"n": 16, "h": 8, "z_dim": 8, "gamma": 1.0, "lambda_k": 0.01, "lr": 3e-4, "latent_constraint": 0.1,
                "lr_anneal_start": lambda cfg: _span(cfg) // 2, "lr_anneal_end": _span}
#: The digits' preset: the small BEGAN with a faster k_t controller, PacGAN packing in pairs and samples from a
#: moving average of G's weights (the measurements behind each are in the PRESETS comment below).
_DIGITS_BEGAN = {**_SMALL_BEGAN, "lambda_k": 0.1, "pack": 2, "ema_decay": 0.999}

#: Per-dataset model defaults that differ from the paper's CelebA settings (see README).  A value
#: may be a function of the trainer's configuration (the anneal below follows ``steps``).
PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    # The embedded 8x8 digits upsampled to 32 px: a narrower BEGAN trains in minutes on a CPU.
    # γ=1.0 with λ_k=0.01 keeps k_t off 0 (the paper's γ=0.5 pins it there).  The embedding size is
    # the setting that mattered most: with h=z=32 the samples drift onto dark, thin strokes (1-4
    # classes), with h=z=8 k_t rises to 0.25-0.3 within 1,000 steps (0.015-0.045 with 32) and the
    # samples spread over 9-10 classes by then.  BEGAN-CS's latent constraint (Chang et al. 2018,
    # alpha 0.1 as its authors; NOT the paper's algorithm, model.latent_constraint=0 turns it off)
    # kept the classes steadier than the same settings without it.  At a constant rate the classes
    # still came and went (5-9 at step 2,000 over three seeds), so the rate falls linearly to 0 over
    # the second half of the run (not in the paper either; model.lr_anneal_end=0 turns it off).
    # The controller gain λ_k = 0.1 (the paper: 0.001): with 0.01 one or two classes were left out on
    # two seeds of three (9, 9, 8 classes), with 0.1 on one (9, 10, 10).  PacGAN packing (Lin et al.
    # 2018; NOT the paper's algorithm either, model.pack=1 turns it off): D auto-encodes pairs of images;
    # over six seeds 9, 10, 10, 10, 10, 8 classes (mean 9.5) against 9, 10, 10, 9, 8, 8 (9.0) without,
    # with a flatter class histogram, and each step is cheaper (D sees half as many inputs).  Samples come from
    # a moving average of G's weights (Yazici et al. 2019; training is unchanged, model.ema_decay=0 samples from G):
    # on the same six seeds 10, 10, 10, 10, 10, 8 classes (9.67), the 7s of seed 0 recovered by a thin margin.
    # benchmarks/began_settings.md holds the measurements behind each choice.
    ("began", "digits"): _DIGITS_BEGAN,
    ("dcgan", "digits"): {"width": 32},
    ("wgan_gp", "digits"): {"width": 32},
    # The generated shapes (32 px, 8 classes): the digits settings as they were before λ_k = 0.1.  BEGAN
    # collapses on them with these and with every other setting tried (benchmarks/began_settings.md,
    # "A second dataset"): a known limitation, kept so that data=shapes trains the same small network.
    ("began", "shapes"): _SMALL_BEGAN,
    ("dcgan", "shapes"): {"width": 32},
    ("wgan_gp", "shapes"): {"width": 32},
}

POSITIVE = ("steps", "batch_size", "image_size", "log_every", "sample_every", "checkpoint_every", "num_samples")
CHOICES = {"precision": ("fp32", "bf16")}


def _nearest(key: str, candidates) -> str:
    near = difflib.get_close_matches(key, sorted(candidates), n=1, cutoff=0.5)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _split(args: list[str]) -> tuple[list[str], list[str]]:
    top, model = [], []
    for arg in args:
        if "=" not in arg:
            raise ConfigError(f"argument {arg!r} is not of the form key=value; write e.g. steps=100 (see gan-train --help).")
        key, value = arg.split("=", 1)
        if key == "data":
            top.append(f"data.name={value}")
        elif key.startswith("model."):
            model.append(f"{key[len('model.'):]}={value}")
        else:
            top.append(arg)
    return top, model


def _merge(base, dotlist: list[str], where: str):
    try:
        return OmegaConf.merge(base, OmegaConf.from_dotlist(dotlist))
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or ""
        leaf = key.split(".")[-1]
        parent = OmegaConf.select(base, key.rsplit(".", 1)[0]) if "." in key else base
        fields = list(parent.keys()) if isinstance(parent, DictConfig) else []
        if "not in struct" in str(exc) or "Key '" in str(exc) and "not" in str(exc):
            prefix = "model." if where != "trainer" else ""
            raise ConfigError(
                f"unknown key {prefix}{key!r} for the {where}{_nearest(leaf, fields)}; "
                f"run gan-train --help for the valid keys."
            ) from None
        raise ConfigError(f"bad value for {key or 'a key'!r}: {exc.msg if hasattr(exc, 'msg') else exc}".split("\n")[0] + ".") from None


def model_hparams(model_cls, overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """The model's resolved hyper-parameters: its dataclass defaults, then the overrides."""
    base = OmegaConf.structured(model_cls.Hparams)
    if isinstance(overrides, dict):
        overrides = [f"{k}={v}" for k, v in overrides.items()]
    merged = _merge(base, overrides, f"model {getattr(model_cls, '__name__', model_cls)!s}")
    return OmegaConf.to_container(merged)


def parse_args(args: list[str]) -> TrainConfig:
    """Build the resolved configuration from ``key=value`` arguments (model hparams included)."""
    from began_plugin.registry import load_model

    top, model_args = _split(args)
    cfg = OmegaConf.to_object(_merge(OmegaConf.structured(TrainConfig), top, "trainer"))
    for key in POSITIVE:
        value = getattr(cfg, key)
        if value <= 0:
            raise ConfigError(f"{key}={value} must be a positive integer; pass e.g. {key}={getattr(TrainConfig, key, 1) or 1}.")
    if cfg.schedule_steps is not None and cfg.schedule_steps < cfg.steps:
        raise ConfigError(
            f"schedule_steps={cfg.schedule_steps} is less than steps={cfg.steps}; set it to the run's final step count "
            f"(at least {cfg.steps}) or leave it out."
        )
    for key, allowed in CHOICES.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"{key}={getattr(cfg, key)!r} is not one of {list(allowed)}; pick one of them.")
    if cfg.data.name not in DATASETS:
        raise ConfigError(f"unknown dataset data={cfg.data.name!r}{_nearest(cfg.data.name, DATASETS)}; expected one of {list(DATASETS)}.")
    model_cls = load_model(cfg.model)
    preset = {k: v(cfg) if callable(v) else v for k, v in PRESETS.get((cfg.model, cfg.data.name), {}).items()}
    cfg.model_hparams = model_hparams(model_cls, [f"{k}={v}" for k, v in preset.items()] + model_args)
    if cfg.image_size not in model_cls.supported_image_sizes:
        raise ConfigError(
            f"image_size={cfg.image_size} is not supported by model {cfg.model!r}; "
            f"expected one of {list(model_cls.supported_image_sizes)}."
        )
    pack = cfg.model_hparams.get("pack", 1)
    if pack > 1 and cfg.batch_size % pack:
        raise ConfigError(
            f"model.pack={pack} groups each batch into packs of {pack} images, but batch_size={cfg.batch_size} "
            f"is not a multiple of it; pass e.g. batch_size={cfg.batch_size - cfg.batch_size % pack or pack}."
        )
    return cfg


#: BEGAN options that are not the paper's algorithm: (key, value that turns it off, what the note says when on).
_OPTION_NOTES = (
    ("latent_constraint", 0, "latent_constraint > 0 is BEGAN-CS (Chang et al. 2018), not the paper's BEGAN: "
                             "model.latent_constraint=0 gives the paper's algorithm"),
    ("lr_anneal_end", 0, "the learning rate falls linearly to 0 from step {lr_anneal_start} to {lr_anneal_end} "
                         "(not in the paper; model.lr_anneal_end=0 turns it off)"),
    ("ema_decay", 0, "samples come from a moving average of G's weights (decay {ema_decay}; Yazici et al. 2019; "
                     "not in the paper, training is unchanged; model.ema_decay=0 samples from G)"),
    ("lr_d", 0, "the discriminator's learning rate is {lr_d} (two time-scale update, Heusel et al. 2017; "
                "not in the paper; model.lr_d=0 gives D the generator's rate)"),
    ("pull_away", 0, "L_G adds {pull_away} x EBGAN's pulling-away term (Zhao et al. 2017; not in the paper; "
                     "model.pull_away=0 turns it off)"),
    ("pack", 1, "the discriminator sees packs of {pack} images (PacGAN, Lin et al. 2018; not in the paper; "
                "model.pack=1 turns it off)"),
)


def preset_note(cfg: TrainConfig) -> str | None:
    """One line naming the per-dataset preset behind a run's hyper-parameters (None when there is none)."""
    preset = PRESETS.get((cfg.model, cfg.data.name))
    if not preset:
        return None
    values = " ".join(f"{k}={cfg.model_hparams.get(k, v)}" for k, v in preset.items())
    note = f"preset {cfg.model}+{cfg.data.name}: {values} (override with model.KEY=VALUE)"
    hp = cfg.model_hparams
    for key, off, text in _OPTION_NOTES:
        if hp.get(key, off) > off:
            note += "; " + text.format(**hp)
    return note


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(d: dict[str, Any]) -> TrainConfig:
    d = dict(d)
    d["data"] = DataConfig(**d["data"])
    return TrainConfig(**d)


def help_text() -> str:
    defaults = OmegaConf.to_yaml(OmegaConf.structured(TrainConfig)).rstrip()
    return (
        "usage: gan-train [--list-models] [key=value ...]\n\n"
        "Train any model registered under the entry-point group gan_trainer.models.\n"
        "model=NAME picks the model, model.KEY=VALUE sets one of its hyper-parameters\n"
        "(gan-train --list-models shows them), data=NAME picks the dataset\n"
        f"({', '.join(DATASETS)}), data.KEY=VALUE sets a data option.\n\n"
        "Keys and their defaults:\n" + defaults + "\n"
    )
