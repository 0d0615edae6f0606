"""The GAN trainer contract: what a model provides, what a host does.

A *model* is an ``nn.Module`` class registered under the entry-point group
``gan_trainer.models``.  It owns its networks and its loss formulas; it never calls
``backward()`` or ``optimizer.step()``.  A *host* (our ``gan-train``, Lightning, a
user's loop) owns the optimisation: it calls the model for losses, back-propagates
each loss into the parameters it belongs to, steps the optimizers, and calls the
model's hook.  Keeping the formula out of the loop is what lets any host add AMP,
DDP or gradient accumulation without touching the model.

The contract, attribute by attribute (``GANModel`` below implements the shared
parts; a third party may subclass it or provide the same names on its own
``nn.Module``: the registry checks the names, not the base class):

``Hparams``
    A dataclass of the model's hyper-parameters with their defaults (one source of
    defaults: the CLI's ``model.<key>=`` overrides and ``--help`` read it).  A field
    added in a later version is absent from older runs' records, which then count as
    trained with its default; a field whose default changed (or a new one whose old
    behaviour is not the default) says what the older runs used with
    ``field(default=NEW, metadata={"absent": OLD})``, so they resume as they were made.
``supported_image_sizes``
    Tuple of square image sizes the architecture builds for.
``__init__(image_size, channels, **hparams)``
    Builds ``self.generator`` and ``self.discriminator`` (``nn.Module`` each).
``sample_z(n, generator=None)``
    Latent codes on the model's device, drawn from ``generator`` when given.
``generate(z)``
    Images in ``[-1, 1]``, shape ``N x channels x image_size x image_size``.
``configure_optimizers()``
    ``{"generator": Optimizer, "discriminator": Optimizer}`` with the paper's
    default hyper-parameters (taken from ``Hparams``).
``n_critic``
    Discriminator steps per generator step (WGAN-GP: 5).
``simultaneous``
    ``True`` when the paper updates both players from losses evaluated at the same
    parameters (BEGAN, eq. 4); the host then calls ``losses(real)`` once and steps
    both optimizers.  ``False``: the host steps the discriminator on
    ``discriminator_loss`` first, then the generator on ``generator_loss``.
``discriminator_loss(real) -> LossOutput``
    Loss whose gradient the host applies to the discriminator's parameters only.
``generator_loss(real) -> LossOutput``
    Loss whose gradient the host applies to the generator's parameters only.  The
    graph may reach the discriminator's parameters: the host must back-propagate
    with ``loss.backward(inputs=generator parameters)`` (or zero the
    discriminator's gradients first), so that ``L_G`` never updates ``D``.
``losses(real) -> (LossOutput, LossOutput)``
    Both losses at the current parameters (default: the two calls above); a model
    may share one forward pass between them.
``on_train_step_end(logs, optimizers)``
    Called once after every generator step with the scalars the model logged in that
    step.  Where a host runs several processes, it must first average every value of
    ``logs`` over the processes (``all_reduce`` / world size), so that every process
    updates its state (BEGAN's ``k_t``) from the same numbers.  The model may adjust
    ``optimizers``' learning rates here (BEGAN's plateau rule); it never steps them.
``state_dict()``
    Holds all training state that is not in an optimizer (BEGAN's ``k_t``) as tensors,
    so that ``torch.load(weights_only=True)`` restores it.

Logged values are 0-dim tensors (reading them as floats would force a host-device
synchronisation on every step); the host decides when to read them.

Optional hooks (a model without them still works; ``GANModel`` gives the defaults):

``dataset_defaults(dataset) -> dict`` (classmethod)
    The ``key=value`` arguments the model's preset for a dataset adds before the user's:
    ``"model.KEY"`` for its hyper-parameters, plain names for host keys (e.g.
    ``{"model.n": 16, "ema_decay": 0.999}``).  ``{}``: no preset.
``option_notes(hparams) -> dict[str, str]`` (classmethod)
    For each enabled option that is not the model's paper's algorithm, its name and a
    one-line note saying what it is and how to turn it off.  Hosts print them and record
    them in the run's ``config.json``.
``paper_hparams()`` (classmethod)
    The hyper-parameter values that turn every option that is not the model's paper's off
    (a harness's row for the paper's algorithm applies them on top of the model's preset).
``check_batch_size(hparams, batch_size)`` (classmethod)
    Raises ``ValueError`` (one sentence) when the hyper-parameters cannot train at this batch
    size, so that a host refuses the run before it writes anything.
``collapse_signs() -> list[CollapseSign]``
    The model's own signs of mode collapse, read from logged rows (BEGAN: k_t pinned at 0).
``curves``
    ``{log key: axis label}``: the logged values a harness should plot against the step.
``convergence_measure``
    The log key of the model's own measure of convergence, one that should fall as the samples
    improve (BEGAN: ``"M_global"``; WGAN-GP: ``"wasserstein"``, its critic's estimate
    E[D(x)] - E[D(G(z))]), or ``None`` (the default): the model claims none. A harness rank-correlates
    it with FID along training.
``progress_keys()``
    Log keys a host should show in its progress bar.
``derived_logs(logs) -> dict``
    Values computed from other logged values (BEGAN's M_global from L(x) and L(G(z))). The host
    calls it after averaging the logs over processes and before ``on_train_step_end``, so a
    non-linear measure is taken of the averages, not averaged from per-process values.
``latent_bounds() -> tuple[float, float] | None``
    The interval ``[low, high]`` every coordinate of ``sample_z``'s codes lies in (BEGAN's uniform z:
    ``(-1.0, 1.0)``), onto which a search over z (``gan-invert``, ``gan-interpolate``) projects its codes.
    ``None``: unbounded (e.g. Gaussian z).

Host features that need no model code (the moving average of G's weights, a learning-rate
schedule relative to the run's length) are the host's: ``generate(z)`` must draw through
``self.generator``, so that a host can swap its average in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class LossOutput:
    """A loss for one player and the scalars to log with it (0-dim tensors)."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class CollapseSign:
    """A condition on logged rows that, held for ``steps`` steps, signals mode collapse.

    ``holds(row)`` reads one logged row (floats); ``advice(row, since)`` is the warning's text,
    given the row at which the warning fires and the step since which the condition held.
    """

    name: str
    steps: int
    holds: Callable[[Mapping[str, float]], bool]
    advice: Callable[[Mapping[str, float], int], str]


#: The attributes a model class must provide; the registry checks them by name.
REQUIRED_ATTRIBUTES: tuple[str, ...] = (
    "Hparams",
    "supported_image_sizes",
    "sample_z",
    "generate",
    "configure_optimizers",
    "n_critic",
    "simultaneous",
    "discriminator_loss",
    "generator_loss",
    "losses",
    "on_train_step_end",
    "state_dict",
    "load_state_dict",
)


class GANModel(nn.Module):
    """Base class implementing the shared parts of the contract (see module docstring)."""

    @dataclass
    class Hparams:
        pass

    supported_image_sizes: ClassVar[tuple[int, ...]] = (32, 64)
    n_critic: ClassVar[int] = 1
    simultaneous: ClassVar[bool] = False

    def __init__(self, image_size: int = 32, channels: int = 3, **hparams: Any) -> None:
        super().__init__()
        if image_size not in self.supported_image_sizes:
            raise ValueError(
                f"image_size={image_size} is not supported by {type(self).__name__}; "
                f"expected one of {list(self.supported_image_sizes)}: pick one of those "
                f"(the data is resized to it)."
            )
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels={channels!r} must be a positive integer (1 for grayscale, 3 for RGB).")
        self.image_size = image_size
        self.channels = channels
        self.hparams = self._resolve_hparams(hparams)

    @classmethod
    def _resolve_hparams(cls, overrides: Mapping[str, Any]):
        names = {f.name for f in dataclasses.fields(cls.Hparams)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            import difflib

            hints = []
            for key in unknown:
                near = difflib.get_close_matches(key, sorted(names), n=1)
                hints.append(f"{key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
            raise ValueError(
                f"unknown hyper-parameter {', '.join(hints)} for {cls.__name__}; expected one of {sorted(names)}."
            )
        return cls.Hparams(**overrides)

    # -- the parts each model writes --------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z).clamp(-1.0, 1.0)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def discriminator_loss(self, real: torch.Tensor) -> LossOutput:
        raise NotImplementedError

    def generator_loss(self, real: torch.Tensor) -> LossOutput:
        raise NotImplementedError

    def losses(self, real: torch.Tensor) -> tuple[LossOutput, LossOutput]:
        return self.discriminator_loss(real), self.generator_loss(real)

    def on_train_step_end(
        self, logs: Mapping[str, torch.Tensor], optimizers: Mapping[str, torch.optim.Optimizer]
    ) -> None:
        """Default: no controller state to update."""

    # -- optional hooks (see the module docstring) --------------------------------------
    curves: ClassVar[Mapping[str, str]] = {}
    convergence_measure: ClassVar[str | None] = None

    @classmethod
    def dataset_defaults(cls, dataset: str) -> dict[str, Any]:
        """The ``key=value`` arguments of the model's preset for ``dataset`` (none by default)."""
        return {}

    @classmethod
    def option_notes(cls, hparams: Mapping[str, Any]) -> dict[str, str]:
        """Name -> one-line note for each enabled option that is not the paper's (none by default)."""
        return {}

    @classmethod
    def paper_hparams(cls) -> dict[str, Any]:
        """The values that turn every option that is not the paper's off (none by default)."""
        return {}

    @classmethod
    def check_batch_size(cls, hparams: Mapping[str, Any], batch_size: int) -> None:
        """Raise ``ValueError`` when the model cannot train at ``batch_size`` (any size by default)."""

    def collapse_signs(self) -> list[CollapseSign]:
        """The model's own signs of mode collapse (none by default)."""
        return []

    def progress_keys(self) -> tuple[str, ...]:
        """Log keys a host should show in its progress bar."""
        return ()

    def derived_logs(self, logs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Logged values computed from the (process-averaged) others (none by default)."""
        return {}

    def latent_bounds(self) -> tuple[float, float] | None:
        """The interval every coordinate of ``sample_z``'s codes lies in; None (the default): unbounded."""
        return None


_HOOK_DEFAULTS: dict[str, Any] = {
    "dataset_defaults": lambda dataset: {},
    "option_notes": lambda hparams: {},
    "paper_hparams": lambda: {},
    "check_batch_size": lambda hparams, batch_size: None,
    "collapse_signs": lambda: [],
    "progress_keys": lambda: (),
    "derived_logs": lambda logs: {},
    "latent_bounds": lambda: None,
    "curves": {},
    "convergence_measure": None,
}


def optional_hook(model: Any, name: str) -> Any:
    """A model's (class or instance) optional hook ``name``, or the contract's default when it has none."""
    if name not in _HOOK_DEFAULTS:
        raise KeyError(f"{name!r} is not an optional hook of the contract; expected one of {sorted(_HOOK_DEFAULTS)}.")
    found = getattr(model, name, None)
    return _HOOK_DEFAULTS[name] if found is None else found
