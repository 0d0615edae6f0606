"""gan-invert and gan-interpolate (began_plugin.inversion): inversion of images into z, lerp and slerp strips."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.testing import assert_close

from began_plugin.baselines.dcgan import DCGAN
from began_plugin.began.model import BEGAN
from began_plugin.data import build_dataset
from began_plugin.interface import optional_hook
from began_plugin.inversion import (
    PADDING,
    fractions,
    interpolate_main,
    invert,
    invert_main,
    latent_bounds,
    latent_path,
    lerp,
    reconstruction_error,
    slerp,
    strip_size,
)
from began_plugin.training.sample import load_run, to_uint8_hwc
from began_plugin.training.sample import main as sample_main

IMAGE_SIZE = 32  # the trainer's default; the digits runs below use it
TINY = ("began", "dcgan", "wgan_gp")


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def runs(tiny_runs):
    return tiny_runs


def _drawn(model, n=8, seed=123):
    """n images the generator draws from known z."""
    z = model.sample_z(n, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return z, model.generate(z)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _json_line(out: str) -> dict:
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    return json.loads(lines[0])


def _save_npz(path: Path, images: np.ndarray) -> Path:
    np.savez_compressed(path, images=images)
    return path


# -- (a) inversion of the generator's own images --------------------------------------------------------------
@pytest.mark.parametrize("name", list(TINY))
def test_inverting_generated_images_recovers_them(name, runs):
    model = load_run(runs[name])
    z_true, x = _drawn(model)
    start = reconstruction_error(model, x, model.sample_z(8, generator=torch.Generator().manual_seed(0)))
    other = reconstruction_error(model, x, model.sample_z(8, generator=torch.Generator().manual_seed(7)))
    z, recon, l1 = invert(model, x, steps=200, lr=0.05, seed=0)
    assert z.shape == z_true.shape and z.dtype == torch.float32 and recon.shape == x.shape
    # the search lowers every image's error by over an order of magnitude, from a start and from any random z
    assert start.min() > 0 and other.min() > 0
    assert (l1 < 0.1 * start).all() and (l1 < 0.1 * other).all()
    # what it returns belongs together: G(z) is the reconstruction, l1 its mean error
    with torch.no_grad():
        assert_close(model.generate(z), recon, rtol=0, atol=0)
    assert_close(l1, (recon - x).abs().flatten(1).mean(1), rtol=0, atol=0)
    # no step: the start, which is model.sample_z seeded by seed
    z0, _, l1_0 = invert(model, x, steps=0, seed=0)
    assert_close(z0, model.sample_z(8, generator=torch.Generator().manual_seed(0)), rtol=0, atol=0)
    assert_close(l1_0, start, rtol=0, atol=0)


def test_began_recovers_the_codes_themselves(runs):
    model = load_run(runs["began"])
    z_true, x = _drawn(model)
    z, _, _ = invert(model, x, steps=200, seed=0)
    assert (z - z_true).abs().max() < 0.05
    assert (model.sample_z(8, generator=torch.Generator().manual_seed(0)) - z_true).abs().max() > 0.5


def test_more_restarts_never_do_worse(runs):
    model = load_run(runs["dcgan"])
    _, x = _drawn(model, n=6)
    _, _, one = invert(model, x, steps=30, seed=0, restarts=1)
    _, _, three = invert(model, x, steps=30, seed=0, restarts=3)
    assert (three <= one + 1e-6).all()


# -- (b) the latent range --------------------------------------------------------------------------------------
def test_latent_bounds_hook():
    assert BEGAN(32, 1, n=8, h=8, z_dim=8).latent_bounds() == (-1.0, 1.0)
    assert latent_bounds(DCGAN(32, 1, width=8)) is None  # Gaussian z: unbounded
    assert optional_hook(torch.nn.Linear(2, 2), "latent_bounds")() is None  # a model without the hook


def test_began_z_stays_within_its_range_while_inverting_real_images(runs):
    model = load_run(runs["began"])
    ds = build_dataset("digits", None, IMAGE_SIZE)
    x = torch.stack([ds[i] for i in range(6)])
    z, _, _ = invert(model, x, steps=60, lr=0.1, seed=0)
    assert z.min() >= -1.0 and z.max() <= 1.0
    assert (z.abs() == 1.0).any()  # the projection was needed: the search pushed some coordinates past the range


# -- gan-invert --------------------------------------------------------------------------------------------------
def test_gan_invert_writes_z_reconstructions_and_l1_from_npz_and_pngs(runs, tmp_path, capsys):
    run = runs["dcgan"]
    model = load_run(run)
    samples, folder = tmp_path / "samples.npz", tmp_path / "pngs"
    assert sample_main([f"run={run}", f"out={samples}", "n=6", "seed=5"]) == 0
    assert sample_main([f"run={run}", f"out={folder}", "n=6", "seed=5"]) == 0
    capsys.readouterr()
    results = {}
    for source in (samples, folder):
        out = tmp_path / f"{source.stem}-inverted.npz"
        assert invert_main([f"run={run}", f"images={source}", f"out={out}", "steps=40", "n=5"]) == 0
        summary = _json_line(capsys.readouterr().out)
        with np.load(out) as data:
            results[source.stem] = {k: data[k] for k in data.files}
        got = results[source.stem]
        assert sorted(got) == ["l1", "reconstructions", "z"]
        assert got["z"].shape == (5, model.hparams.z_dim) and got["z"].dtype == np.float32
        assert got["reconstructions"].shape == (5, IMAGE_SIZE, IMAGE_SIZE, 1)
        assert got["reconstructions"].dtype == np.uint8
        with torch.no_grad():
            drawn = to_uint8_hwc(model.generate(torch.from_numpy(got["z"])))
        np.testing.assert_array_equal(got["reconstructions"], drawn)
        assert summary["n"] == 5 and summary["out"] == str(out)
        assert summary["l1_mean"] == pytest.approx(float(got["l1"].mean()), rel=1e-6)
        assert summary["l1_std"] == pytest.approx(float(got["l1"].std()), rel=1e-5, abs=1e-9)
        assert summary["l1_mean"] < summary["l1_start_mean"]  # the images are uint8: their rounding stays
    # the folder of PNGs gan-sample wrote holds the same images as its .npz
    for key in ("z", "reconstructions", "l1"):
        np.testing.assert_array_equal(results["samples"][key], results["pngs"][key])


# -- (c) interpolation --------------------------------------------------------------------------------------------
def test_lerp_and_slerp_end_exactly_at_the_two_codes():
    gen = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(1, 16, generator=gen), torch.randn(1, 16, generator=gen)
    for path in (lerp, slerp):
        out = path(z0, z1, fractions(7))
        assert out.shape == (7, 16)
        assert_close(out[0], z0[0], rtol=0, atol=0)
        assert_close(out[-1], z1[0], rtol=0, atol=0)
    assert_close(fractions(5), torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64), rtol=0, atol=0)


def test_slerp_keeps_the_norm_of_two_equal_norm_codes():
    # |(3, 4, 0)| = |(0, 0, 5)| = 5 at a right angle: halfway, sin(pi/4)/sin(pi/2) of each, (3, 4, 5)/sqrt 2
    z0, z1 = torch.tensor([[3.0, 4.0, 0.0]]), torch.tensor([[0.0, 0.0, 5.0]])
    out = slerp(z0, z1, fractions(5))
    assert_close(out[2], torch.tensor([3.0, 4.0, 5.0]) / math.sqrt(2))
    assert_close(out.norm(dim=1), torch.full((5,), 5.0))
    # the line cuts the chord: halfway (1.5, 2, 2.5), of norm sqrt(12.5)
    assert_close(lerp(z0, z1, fractions(5))[2].norm(), torch.tensor(math.sqrt(12.5)))


def test_a_bounded_path_is_projected_into_the_range():
    # (1, 1) and (1, -1) are corners of [-1, 1]^2; the arc between them passes through (sqrt 2, 0)
    z0, z1 = torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, -1.0]])
    assert_close(latent_path(z0, z1, 3, "slerp")[1], torch.tensor([math.sqrt(2), 0.0]))
    assert_close(latent_path(z0, z1, 3, "slerp", (-1.0, 1.0))[1], torch.tensor([1.0, 0.0]))
    assert_close(latent_path(z0, z1, 3, "linear", (-1.0, 1.0))[1], torch.tensor([1.0, 0.0]))


def _tile(strip: np.ndarray, row: int, column: int) -> np.ndarray:
    top, left = PADDING + row * (IMAGE_SIZE + PADDING), PADDING + column * (IMAGE_SIZE + PADDING)
    return strip[top : top + IMAGE_SIZE, left : left + IMAGE_SIZE]


@pytest.mark.parametrize(("mode", "steps", "rows"), [("both", 5, 2), ("linear", 3, 1), ("slerp", 4, 1)])
def test_gan_interpolate_from_two_seeds_writes_a_strip_of_the_expected_size(mode, steps, rows, runs, tmp_path, capsys):
    run = runs["began"]
    out = tmp_path / "strip.png"
    assert interpolate_main([f"run={run}", f"out={out}", "seeds=3,4", f"steps={steps}", f"mode={mode}"]) == 0
    summary = _json_line(capsys.readouterr().out)
    width, height = steps * (IMAGE_SIZE + PADDING) + PADDING, rows * (IMAGE_SIZE + PADDING) + PADDING
    assert strip_size(rows, steps, IMAGE_SIZE) == (width, height)
    with Image.open(out) as im:
        assert im.size == (width, height)
        strip = np.asarray(im.convert("RGB"))[..., 0]
    assert summary["size"] == [width, height] and summary["columns"] == steps and len(summary["rows"]) == rows
    model = load_run(run)
    for column, seed in ((0, 3), (steps - 1, 4)):  # the ends are G of each seed's z, in every row
        with torch.no_grad():
            end = model.generate(model.sample_z(1, generator=torch.Generator().manual_seed(seed)))
        for row in range(rows):
            np.testing.assert_array_equal(_tile(strip, row, column), to_uint8_hwc(end)[0, ..., 0])


def test_gan_interpolate_between_two_real_images_puts_them_at_the_ends(runs, tmp_path, capsys):
    run = runs["dcgan"]
    ds = build_dataset("digits", None, IMAGE_SIZE)
    real = to_uint8_hwc(torch.stack([ds[i] for i in range(3)]))
    source, out = _save_npz(tmp_path / "real.npz", real), tmp_path / "strip.png"
    args = [f"run={run}", f"out={out}", f"images={source}", "steps=4", "invert_steps=20"]
    assert interpolate_main(args) == 0
    summary = _json_line(capsys.readouterr().out)
    with Image.open(out) as im:
        assert im.size == strip_size(2, 4 + 2, IMAGE_SIZE) == (6 * 34 + 2, 2 * 34 + 2)
        strip = np.asarray(im.convert("RGB"))[..., 0]
    for row in range(2):
        np.testing.assert_array_equal(_tile(strip, row, 0), real[0, ..., 0])
        np.testing.assert_array_equal(_tile(strip, row, 5), real[1, ..., 0])
    # the reported errors are those of gan-invert's search on the first two images
    _, _, l1 = invert(load_run(run), torch.from_numpy(real[:2]).permute(0, 3, 1, 2) / 127.5 - 1, steps=20)
    assert summary["l1"] == pytest.approx(l1.tolist(), rel=1e-5)


# -- (d) bad input ------------------------------------------------------------------------------------------------
BAD = [
    (invert_main, "gan-invert", ["run=R", "images=SMALL", "out=O.npz"], "16 x 16 images with 1 channel(s)"),
    (invert_main, "gan-invert", ["run=R", "images=RGB", "out=O.npz"], "32 x 32 images with 3 channel(s)"),
    (invert_main, "gan-invert", ["run=R", "images=PNGS", "out=O.npz"], "is 16 x 16 with 1 channel(s)"),
    (invert_main, "gan-invert", ["run=NONE", "images=GOOD", "out=O.npz"], "holds no config.json"),
    (invert_main, "gan-invert", ["run=R", "images=GOOD", "out=EXISTING.npz"], "already exists"),
    (invert_main, "gan-invert", ["run=R", "images=GOOD", "out=O.npz", "stepz=3"], "unknown key 'stepz'"),
    (invert_main, "gan-invert", ["run=R", "images=GOOD", "O.npz"], "is not of the form key=value"),
    (invert_main, "gan-invert", ["run=R", "images=GOOD", "out=O.png"], "must be a file name ending in .npz"),
    (invert_main, "gan-invert", ["run=R", "images=GOOD", "out=O.npz", "restarts=0"], "restarts=0 must be"),
    (invert_main, "gan-invert", ["run=R", "images=GOOD", "out=O.npz", "n=9"], "n=9 asks for more images"),
    (invert_main, "gan-invert", ["run=R", "images=MISSING.npz", "out=O.npz"], "does not exist"),
    (invert_main, "gan-invert", ["run=R", "out=O.npz"], "images= is required"),
    (interpolate_main, "gan-interpolate", ["run=R", "out=O.png", "images=SMALL"], "16 x 16 images"),
    (interpolate_main, "gan-interpolate", ["run=NONE", "out=O.png"], "holds no config.json"),
    (interpolate_main, "gan-interpolate", ["run=R", "out=EXISTING.png"], "already exists"),
    (interpolate_main, "gan-interpolate", ["run=R", "out=O.png", "mdoe=slerp"], "unknown key 'mdoe'"),
    (interpolate_main, "gan-interpolate", ["run=R", "O.png"], "is not of the form key=value"),
    (interpolate_main, "gan-interpolate", ["run=R", "out=O.png", "seeds=1"], "two integers separated by a comma"),
    (interpolate_main, "gan-interpolate", ["run=R", "out=O.png", "seeds=0,1", "images=GOOD"], "pass one of them"),
    (interpolate_main, "gan-interpolate", ["run=R", "out=O.png", "steps=1"], "steps=1 must be at least 2"),
    (interpolate_main, "gan-interpolate", ["run=R", "out=O.png", "mode=arc"], "is not one of"),
    (interpolate_main, "gan-interpolate", ["run=R", "out=O.png", "images=ONE"], "holds one image"),
]


@pytest.mark.parametrize(("command", "name", "args", "expected"), BAD, ids=[f"{b[1]}-{b[3][:24]}" for b in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(command, name, args, expected, runs, tmp_path, capsys):
    run = runs["dcgan"]
    rng = np.random.default_rng(0)
    pngs = tmp_path / "PNGS"
    pngs.mkdir()
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(pngs / "0.png")
    paths = {
        "R": run,
        "NONE": tmp_path / "no-such-run",
        "SMALL": _save_npz(tmp_path / "small.npz", rng.integers(0, 256, (4, 16, 16, 1), dtype=np.uint8)),
        "RGB": _save_npz(tmp_path / "rgb.npz", rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)),
        "GOOD": _save_npz(tmp_path / "good.npz", rng.integers(0, 256, (4, 32, 32, 1), dtype=np.uint8)),
        "ONE": _save_npz(tmp_path / "one.npz", rng.integers(0, 256, (1, 32, 32, 1), dtype=np.uint8)),
        "PNGS": pngs,
    }
    for existing in ("EXISTING.npz", "EXISTING.png"):
        paths[existing] = tmp_path / existing
        paths[existing].write_bytes(b"mine")
    for new in ("O.npz", "O.png", "MISSING.npz"):
        paths[new] = tmp_path / new
    args = [
        (a.split("=", 1)[0] + "=" + str(paths.get(a.split("=", 1)[1], a.split("=", 1)[1])))
        if "=" in a
        else str(paths[a])
        for a in args
    ]
    before_run, before_tmp = _tree(run), _tree(tmp_path)
    assert command(args) == 2
    captured = capsys.readouterr()
    assert expected in _one_line(captured.err, name) and captured.out == ""
    assert _tree(run) == before_run and _tree(tmp_path) == before_tmp
    assert not (tmp_path / "O.npz").exists() and not (tmp_path / "O.png").exists()


@pytest.mark.parametrize(("command", "usage"), [(invert_main, "usage: gan-invert"), (interpolate_main, "usage: gan-i")])
def test_help_prints_the_usage(command, usage, capsys):
    assert command(["--help"]) == 0
    assert usage in capsys.readouterr().out
