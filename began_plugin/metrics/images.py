"""Image conversion at the boundary between the trainer and the feature networks.

The trainer produces float tensors in [-1, 1] with 1 or 3 channels; every feature network here (like
torch-fidelity's) takes uint8 RGB, N x 3 x H x W. Quantising to uint8 first makes generated samples go
through exactly the same path as real images read from PNG files, which is how FID is defined in
practice (Heusel et al. 2017; torch-fidelity and pytorch-fid both feed 8-bit images).
"""

from __future__ import annotations

import torch

from began_plugin.metrics.errors import MetricsError

__all__ = ["to_uint8_rgb", "as_uint8_rgb_batch"]


def to_uint8_rgb(x: torch.Tensor) -> torch.Tensor:
    """Map float images in [-1, 1] (N x C x H x W, C in {1, 3}) to uint8 RGB 0..255, N x 3 x H x W."""
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise MetricsError(
            f"to_uint8_rgb expects a floating-point tensor in [-1, 1], got {getattr(x, 'dtype', type(x))}; convert uint8 images with as_uint8_rgb_batch instead."
        )
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise MetricsError(
            f"to_uint8_rgb expects N x C x H x W with C = 1 or 3, got shape {tuple(x.shape)}; reshape the batch before converting it."
        )
    # Clamp before rounding so out-of-range generator outputs saturate instead of wrapping around in uint8.
    u = ((x.detach().float() + 1.0) * 127.5).clamp_(0.0, 255.0).round_().to(torch.uint8)
    return u.expand(-1, 3, -1, -1).contiguous() if u.shape[1] == 1 else u


def as_uint8_rgb_batch(batch) -> torch.Tensor:
    """Accept a DataLoader item (tensor, or tuple whose first element is the images) and return uint8 RGB.

    Floating tensors are taken to be in [-1, 1] (the trainer's convention); uint8 tensors are used as they are,
    with a single channel repeated to three.
    """
    if isinstance(batch, (tuple, list)):
        batch = batch[0]
    if not torch.is_tensor(batch):
        raise MetricsError(
            f"expected a batch of images as a torch.Tensor, got {type(batch).__name__}; yield tensors (or (images, labels) tuples) from the batch iterable."
        )
    if batch.is_floating_point():
        return to_uint8_rgb(batch)
    if batch.dtype != torch.uint8 or batch.dim() != 4 or batch.shape[1] not in (1, 3):
        raise MetricsError(
            f"expected uint8 images N x C x H x W with C = 1 or 3, got dtype {batch.dtype} and shape {tuple(batch.shape)}; pass floats in [-1, 1] or uint8 0..255."
        )
    return batch.expand(-1, 3, -1, -1).contiguous() if batch.shape[1] == 1 else batch
