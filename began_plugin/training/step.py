"""One optimisation step of any ``gan_trainer.models`` model: the host's half of the contract.

The model returns losses; this module back-propagates each into its own player's
parameters (``backward(inputs=...)``, so the generator's loss never leaves a gradient
on the discriminator), optionally averages gradients and logs across processes, steps
the optimizers and calls the model's hook.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager as ContextManager

import torch

from began_plugin.interface import optional_hook
from began_plugin.training.lr_schedule import restore_model_rates, scale_rates

Logs = dict[str, torch.Tensor]


def _apply(
    loss: torch.Tensor,
    params: list[torch.nn.Parameter],
    opt: torch.optim.Optimizer,
    sync_grads: Callable[[list[torch.nn.Parameter]], None] | None,
    retain_graph: bool = False,
) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward(inputs=params, retain_graph=retain_graph)
    if sync_grads is not None:
        sync_grads(params)


def train_step(
    model: torch.nn.Module,
    optimizers: Mapping[str, torch.optim.Optimizer],
    next_batch: Callable[[], torch.Tensor],
    sync_grads: Callable[[list[torch.nn.Parameter]], None] | None = None,
    reduce_logs: Callable[[Logs], Logs] | None = None,
    autocast: Callable[[], ContextManager] = contextlib.nullcontext,
    lr_scale: float | None = None,
) -> Logs:
    """Run ``model.n_critic`` discriminator updates and one generator update; return the logs.

    ``sync_grads`` (data-parallel hosts) averages the gradients of the given parameters
    across processes; ``reduce_logs`` averages the logged scalars, so that the model's
    hook sees the same values on every process.  ``lr_scale`` (a host's schedule, see
    ``lr_schedule``) multiplies every rate the model sets, from the next step on.
    """
    d_params = [p for p in model.discriminator.parameters() if p.requires_grad]
    g_params = [p for p in model.generator.parameters() if p.requires_grad]
    opt_d, opt_g = optimizers["discriminator"], optimizers["generator"]
    logs: Logs = {}
    critic_only = model.n_critic - 1 if model.simultaneous else model.n_critic
    real = None
    for _ in range(critic_only):
        real = next_batch()
        with autocast():
            out = model.discriminator_loss(real)
        _apply(out.loss, d_params, opt_d, sync_grads)
        opt_d.step()
        logs.update(out.logs)
    if model.simultaneous:
        real = next_batch()
        with autocast():
            d_out, g_out = model.losses(real)
        _apply(d_out.loss, d_params, opt_d, sync_grads, retain_graph=True)
        _apply(g_out.loss, g_params, opt_g, sync_grads)
        opt_d.step()
        opt_g.step()
        logs.update(d_out.logs)
    else:
        if real is None:
            real = next_batch()
        with autocast():
            g_out = model.generator_loss(real)
        _apply(g_out.loss, g_params, opt_g, sync_grads)
        opt_g.step()
    logs.update(g_out.logs)
    if reduce_logs is not None:
        logs = reduce_logs(logs)
    logs.update(optional_hook(model, "derived_logs")(logs))  # of the averages, on every process alike
    if lr_scale is not None:
        restore_model_rates(optimizers)
    model.on_train_step_end(logs, optimizers)
    if lr_scale is not None:
        scale_rates(optimizers, lr_scale)
    return logs
