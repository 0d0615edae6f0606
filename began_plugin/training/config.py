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
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from began_plugin.data import DATASETS
from began_plugin.interface import optional_hook


class ConfigError(ValueError):
    """A bad command-line value: the message is one sentence for the user."""


@dataclass
class DataConfig:
    name: str = "digits"  # one of began_plugin.data.DATASETS
    root: str | None = None  # where torchvision datasets / the image folder live
    split: str = "train"
    channels: int | None = None  # None: the data's own; 1 or 3 (image folders convert, others must match)
    skip_bad_files: bool = False  # image folders: skip unreadable files instead of stopping
    num_workers: int = 0


@dataclass
class TrainConfig:
    model: str = "began"  # a name registered under gan_trainer.models
    data: DataConfig = field(default_factory=DataConfig)
    steps: int = 2000  # generator steps
    # The run length that step-relative settings (lr_anneal) plan for; None: `steps`.  Set it to the
    # final step count when training in parts with resume=true.
    schedule_steps: int | None = None
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
    # Channels-last memory for the model and its batches (the same function, other float rounding): faster on the
    # CPU for BEGAN and DCGAN, neutral for WGAN-GP (docs/performance.md). Runs recorded before it existed: False.
    channels_last: bool = field(default=True, metadata={"absent": False})
    # Host features for every model (training/ema.py, training/lr_schedule.py); not in any model's paper.
    ema_decay: float = 0.0  # samples from a moving average of G's weights with this decay; 0: from G
    lr_anneal: float = 0.0  # every rate falls linearly to 0 over this last fraction of the run; 0: off
    model_hparams: dict[str, Any] = field(default_factory=dict)  # filled from model.KEY=VALUE


POSITIVE = ("steps", "batch_size", "image_size", "log_every", "sample_every", "checkpoint_every", "num_samples")
CHOICES = {"precision": ("fp32", "bf16")}


def _nearest(key: str, candidates) -> str:
    near = difflib.get_close_matches(key, sorted(candidates), n=1, cutoff=0.5)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _split(args: list[str]) -> tuple[list[str], list[str]]:
    top, model = [], []
    for arg in args:
        if "=" not in arg:
            raise ConfigError(
                f"argument {arg!r} is not of the form key=value; write e.g. steps=100 (see gan-train --help)."
            )
        key, value = arg.split("=", 1)
        if key == "data":
            top.append(f"data.name={value}")
        elif key.startswith("model."):
            model.append(f"{key[len('model.') :]}={value}")
        else:
            top.append(arg)
    return top, model


def _merge(
    base, dotlist: list[str], where: str, prefix: str = "", hint: str = "run gan-train --help for the valid keys"
):
    try:
        return OmegaConf.merge(base, OmegaConf.from_dotlist(dotlist))
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or ""
        leaf = key.split(".")[-1]
        parent = OmegaConf.select(base, key.rsplit(".", 1)[0]) if "." in key else base
        fields = list(parent.keys()) if isinstance(parent, DictConfig) else []
        if "not in struct" in str(exc) or "Key '" in str(exc) and "not" in str(exc):
            raise ConfigError(
                f"unknown key {prefix + key!r} for the {where}{_nearest(leaf, fields)}; {hint}."
            ) from None
        raise ConfigError(
            f"bad value for {prefix + key if key else 'a key'!r}: {exc.msg if hasattr(exc, 'msg') else exc}".split(
                "\n"
            )[0]
            + "."
        ) from None


def parse_command(schema, args: list[str], where: str, usage: str, required: tuple[str, ...] = ()):
    """A command's ``key=value`` arguments as an instance of the dataclass ``schema`` (typed by OmegaConf).

    Positional arguments, unknown keys, values of the wrong type and missing required keys are each one
    sentence ending in ``usage``.
    """
    bad = [a for a in args if "=" not in a]
    if bad:
        raise ConfigError(f"argument {bad[0]!r} is not of the form key=value; {usage}")
    merged = _merge(OmegaConf.structured(schema), args, where, hint=usage.rstrip("."))
    for key in required:
        if OmegaConf.is_missing(merged, key):
            raise ConfigError(f"{key}= is required; {usage}")
    return OmegaConf.to_object(merged)


def model_hparams(model_cls, overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """The model's resolved hyper-parameters: its dataclass defaults, then the overrides."""
    base = OmegaConf.structured(model_cls.Hparams)
    if isinstance(overrides, dict):
        overrides = [f"{k}={v}" for k, v in overrides.items()]
    merged = _merge(base, overrides, f"model {getattr(model_cls, '__name__', model_cls)!s}", prefix="model.")
    return OmegaConf.to_container(merged)


def _preset_args(model_cls, dataset: str) -> list[str]:
    """The model's preset for ``dataset`` as ``key=value`` arguments (they come before the user's)."""
    preset = optional_hook(model_cls, "dataset_defaults")(dataset)
    args = [f"{k}={v}" for k, v in preset.items()]
    refused = [a for a in args if a.split("=", 1)[0] in ("model", "data", "data.name")]
    if refused:
        raise ConfigError(
            f"the {dataset!r} preset of {model_cls.__name__} sets {refused[0]!r}, which picks what the preset is for; "
            f"remove it from the model's dataset_defaults."
        )
    return args


def parse_args(args: list[str]) -> TrainConfig:
    """Build the resolved configuration from ``key=value`` arguments (model hparams included).

    The model's preset for the dataset (its ``dataset_defaults`` hook) comes first; the user's arguments win.
    """
    from began_plugin.registry import load_model

    top, model_args = _split(args)
    chosen = OmegaConf.to_object(_merge(OmegaConf.structured(TrainConfig), top, "trainer"))
    if chosen.data.name not in DATASETS:
        raise ConfigError(
            f"unknown dataset data={chosen.data.name!r}{_nearest(chosen.data.name, DATASETS)}; expected one of {list(DATASETS)}."
        )
    model_cls = load_model(chosen.model)
    preset_top, preset_model = _split(_preset_args(model_cls, chosen.data.name))
    cfg = OmegaConf.to_object(_merge(OmegaConf.structured(TrainConfig), preset_top + top, "trainer"))
    for key in POSITIVE:
        value = getattr(cfg, key)
        if value <= 0:
            raise ConfigError(
                f"{key}={value} must be a positive integer; pass e.g. {key}={getattr(TrainConfig, key, 1) or 1}."
            )
    if not 0 <= cfg.seed < 2**63:
        raise ConfigError(f"seed={cfg.seed} is outside [0, 2**63); pass a non-negative integer such as seed=0.")
    if cfg.data.num_workers < 0:
        raise ConfigError(f"data.num_workers={cfg.data.num_workers} must be 0 or more; 0 reads in the main process.")
    if cfg.data.channels not in (None, 1, 3):
        raise ConfigError(f"data.channels={cfg.data.channels} must be 1 or 3, or left out for the data's own.")
    if cfg.schedule_steps is not None and cfg.schedule_steps < cfg.steps:
        raise ConfigError(
            f"schedule_steps={cfg.schedule_steps} is less than steps={cfg.steps}; set it to the run's final step count "
            f"(at least {cfg.steps}) or leave it out."
        )
    for key, allowed in CHOICES.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"{key}={getattr(cfg, key)!r} is not one of {list(allowed)}; pick one of them.")
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise ConfigError(
            f"ema_decay={cfg.ema_decay} must be in [0, 1): 0 samples from G itself, e.g. 0.999 from a moving average."
        )
    if not 0.0 <= cfg.lr_anneal <= 1.0:
        raise ConfigError(
            f"lr_anneal={cfg.lr_anneal} must be in [0, 1], the fraction of the run over which the rate falls to 0; 0 turns it off."
        )
    cfg.model_hparams = model_hparams(model_cls, preset_model + model_args)
    if cfg.image_size not in model_cls.supported_image_sizes:
        raise ConfigError(
            f"image_size={cfg.image_size} is not supported by model {cfg.model!r}; "
            f"expected one of {list(model_cls.supported_image_sizes)}."
        )
    try:
        optional_hook(model_cls, "check_batch_size")(cfg.model_hparams, cfg.batch_size)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return cfg


def host_option_notes(cfg: TrainConfig) -> dict[str, str]:
    """The host features a run has on, each with a one-line note (none is in any model's paper)."""
    from began_plugin.training.ema import warmup_decay

    notes = {}
    if cfg.ema_decay > 0:
        notes["ema"] = (
            f"samples come from a moving average of G's weights (decay {cfg.ema_decay}, warm-up "
            f"min(decay, (1+t)/(10+t)): {warmup_decay(cfg.ema_decay, (cfg.schedule_steps or cfg.steps) - 1):.4f} "
            f"at the last step; Yazici et al. 2019; training is unchanged; ema_decay=0 samples from G)"
        )
    if cfg.lr_anneal > 0:
        notes["lr_anneal"] = (
            f"every learning rate falls linearly to 0 over the last {cfg.lr_anneal:g} of the run's "
            f"{cfg.schedule_steps or cfg.steps} steps (lr_anneal=0 turns it off)"
        )
    return notes


def option_notes(cfg: TrainConfig) -> dict[str, str]:
    """Every option of a run that is not its model's paper's algorithm: the model's, then the host's."""
    from began_plugin.registry import load_model

    notes = dict(optional_hook(load_model(cfg.model), "option_notes")(cfg.model_hparams))
    notes.update(host_option_notes(cfg))
    return notes


def preset_note(cfg: TrainConfig) -> str | None:
    """One line naming the run's preset and every option that is not the paper's (None when there is neither)."""
    from began_plugin.registry import load_model

    preset = optional_hook(load_model(cfg.model), "dataset_defaults")(cfg.data.name)
    parts = []
    if preset:
        values = " ".join(f"{k}={_current(cfg, k)}" for k in preset)
        parts.append(f"preset {cfg.model}+{cfg.data.name}: {values} (override with KEY=VALUE)")
    parts += option_notes(cfg).values()
    return "; ".join(parts) or None


def _current(cfg: TrainConfig, key: str) -> Any:
    if key.startswith("model."):
        return cfg.model_hparams.get(key[len("model.") :])
    return OmegaConf.select(OmegaConf.structured(cfg), key)


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(d: dict[str, Any]) -> TrainConfig:
    """The configuration of a ``config.json`` (its derived keys, e.g. ``image_channels``, are dropped)."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    d = {k: v for k, v in d.items() if k in names}
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
