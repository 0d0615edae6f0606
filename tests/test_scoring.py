"""gan-score: images from any generator scored as a harness cell; null generators through the command line."""

import json

import numpy as np
import pytest
from PIL import Image

from began_plugin.data import build_dataset
from began_plugin.scoring import main

pytestmark = pytest.mark.slow  # trains the coverage classifier once and runs the feature network


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("score-cache")


def _score(tmp_path, cache, images, *extra):
    out = tmp_path / "score.json"
    assert main([f"images={images}", "data=digits", "network=standin", f"cache_dir={cache}", f"out={out}", *extra]) == 0
    return json.loads(out.read_text())


def _uint8(images):
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def test_null_generators_cover_at_most_one_class_and_real_images_all_ten(tmp_path, cache):
    rng = np.random.default_rng(0)
    noise = tmp_path / "noise.npz"
    np.savez(noise, images=rng.integers(0, 256, (1000, 32, 32, 1), dtype=np.uint8))
    white = tmp_path / "white.npz"
    np.savez(white, images=np.full((1000, 32, 32, 1), 255, dtype=np.uint8))
    real = build_dataset("digits", None, 32, split="train").images  # not the reference (the test split)
    repeated = tmp_path / "repeated"  # a folder of PNGs, one real digit 1,000 times
    repeated.mkdir()
    one = _uint8(real[:1])[0, :, :, 0]
    for i in range(1000):
        Image.fromarray(one).save(repeated / f"{i:04d}.png")
    covered = {
        name: _score(tmp_path, cache, path)["metrics"]["classes_covered"]["value"]
        for name, path in (("noise", noise), ("white", white), ("repeated", repeated))
    }
    assert covered["noise"] == 0 and covered["white"] == 0 and covered["repeated"] == 1
    held_out = tmp_path / "real.npz"
    np.savez(held_out, images=_uint8(real[:1000]))
    result = _score(tmp_path, cache, held_out)
    assert result["metrics"]["classes_covered"]["value"] == 10
    assert result["num_images"] == 1000 and result["preset"] == "cpu" and result["network"]["network"] == "standin"
    assert "standin_fd" in result["metrics"] and "fid" not in result["metrics"]


def test_bad_input_is_one_sentence_and_writes_nothing(tmp_path, capsys):
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, images=np.zeros((10, 28, 28, 1), dtype=np.uint8))
    cases = (
        ([f"images={tmp_path / 'none.npz'}"], "does not exist"),
        ([f"images={wrong}"], "are 28x28 with 1 channel(s), but the protocol scores 32x32 with 1"),
        ([f"images={wrong}", "n=0"], "n=0 must be a positive integer"),
        (["data=digits"], "images= is required"),
        ([f"images={wrong}", "colour=red"], "unknown key"),
        ([f"images={wrong}", "preset=mnist5k"], "preset=mnist5k scores against data=mnist5k, not data=digits"),
    )
    for args, message in cases:
        out = tmp_path / "out.json"
        assert main([*args, f"out={out}"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()
