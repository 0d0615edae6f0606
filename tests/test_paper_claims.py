"""The paper's claims as measurements: memorisation, M_global against FID, and BEGAN's gamma trade-off."""

import argparse
import hashlib
import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from test_compare import FAST, compare  # noqa: E402  (the harness CLI and its smoke-sized arguments)

from began_plugin import harness
from began_plugin.harness import PRESETS
from began_plugin.interface import optional_hook
from began_plugin.metrics.convergence import measure_at_steps, spearman
from began_plugin.metrics.memorisation import REFERENCE_HELD_OUT, REFERENCE_LEAVE_ONE_OUT, memorisation
from began_plugin.registry import load_model


# -- memorisation on null inputs -----------------------------------------------------------------------------------
def _features(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 16, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_copies_of_training_images_have_ratio_zero_exactly():
    training, held_out = _features(40, 0), _features(30, 1)
    copies = training[torch.tensor([3, 3, 7, 0, 39, 12])]
    result = memorisation(copies, training, held_out)
    assert result.generated_median == 0.0 and result.ratio == 0.0
    assert result.nearest.tolist() == [3, 3, 7, 0, 39, 12] and result.reference == REFERENCE_HELD_OUT
    # in float32 too (the stored features' type): the chosen neighbour's distance is recomputed exactly
    assert memorisation(copies.float(), training.float(), held_out.float()).ratio == 0.0


def test_held_out_images_as_samples_have_ratio_one_exactly():
    training, held_out = _features(40, 0), _features(30, 1)
    result = memorisation(held_out, training, held_out)
    assert result.ratio == 1.0 and result.generated_median == result.reference_median > 0


def test_medians_of_a_2d_example_worked_by_hand():
    training = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    # nearest training distances: 1 (to (0,0)), 2 (to (3,0)), 3 (to (0,4)): median 2
    held_out = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 7.0]])
    # 0.5, 0 (a copy of (3,0)), 3 (to (3,0)), 0.25: median (0.25 + 0.5) / 2 = 0.375
    generated = torch.tensor([[0.0, 0.5], [3.0, 0.0], [6.0, 0.0], [0.0, 4.25]])
    result = memorisation(generated, training, held_out)
    torch.testing.assert_close(result.distances, torch.tensor([0.5, 0.0, 3.0, 0.25], dtype=torch.float64))
    assert result.nearest.tolist() == [0, 1, 1, 2]
    torch.testing.assert_close((result.generated_median, result.reference_median, result.ratio), (0.375, 2.0, 0.1875))
    assert (result.num_training, result.num_reference) == (3, 3)
    # no held-out images: each training image to its nearest *other* one, 3, 3 and 4: median 3
    loo = memorisation(generated, training)
    assert loo.reference == REFERENCE_LEAVE_ONE_OUT
    torch.testing.assert_close((loo.reference_median, loo.ratio), (3.0, 0.125))


def test_a_reference_of_training_copies_gives_no_ratio_and_bad_shapes_one_sentence():
    from began_plugin import metrics

    training = _features(10, 0)
    net = SimpleNamespace(name="standin", weights_sha256="0" * 64)
    values, result = metrics.memorisation_metrics(net, _features(5, 2), training, training[:4])
    assert result.ratio is None and values["memorisation_ratio"].available is False
    with pytest.raises(metrics.MetricsError, match="16 dimensions but reference ones 3") as e:
        memorisation(_features(5, 2), torch.zeros(4, 3))
    assert "\n" not in str(e.value)


# -- the convergence measure against FID ---------------------------------------------------------------------------
def test_spearman_of_hand_examples():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([0.9, 0.7, 0.6, 0.1], [1, 5, 6, 50]) == pytest.approx(-1.0)  # monotone, not linear
    # one swapped pair: 1 - 6 * (1 + 1) / (4 * (16 - 1)) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman([1, 1, 1], [1, 2, 3]) is None  # a constant measure ranks nothing


def test_the_measure_is_read_at_the_nearest_logged_step():
    rows = [{"step": 50, "M_global": 0.5}, {"step": 100, "M_global": 0.4}, {"step": 150, "loss_d": 1.0}]
    # 75 is as near 50 as 100: the earlier step; 150 has no M_global, so 100 is nearest
    assert measure_at_steps(rows, "M_global", [40, 75, 100, 150]) == [(50, 0.5), (50, 0.5), (100, 0.4), (100, 0.4)]
    assert measure_at_steps(rows, "wasserstein", [50]) == []


def test_convergence_measures_come_from_the_models_hook():
    assert optional_hook(load_model("began"), "convergence_measure") == "M_global"
    assert optional_hook(load_model("wgan_gp"), "convergence_measure") == "wasserstein"
    assert optional_hook(load_model("dcgan"), "convergence_measure") is None
    assert optional_hook(torch.nn.Linear(2, 2), "convergence_measure") is None  # a model outside the base class


# -- the gamma sweep -----------------------------------------------------------------------------------------------
def test_the_gamma_preset_is_mnist5k_with_one_paper_began_row_per_gamma():
    base, sweep = PRESETS["mnist5k"], PRESETS["mnist5k-gamma"]
    names = ("began-gamma0.3", "began-gamma0.5", "began-gamma0.7", "began-gamma1")
    assert (
        sweep.models == names and sweep.seeds == (0, 1, 2) and sweep.sweep == ("began", "gamma", (0.3, 0.5, 0.7, 1.0))
    )
    assert sweep.rows == {n: {"model": "began", "paper": True} for n in names}
    assert sweep.model_hparams == dict(zip(names, ({"gamma": g} for g in (0.3, 0.5, 0.7, 1.0))))
    # every other setting is mnist5k's
    assert replace(sweep, models=base.models, rows={}, model_hparams={}, sweep=()) == base
    args = harness.train_args(sweep, "began-gamma0.7", 1, Path("/tmp/x"), "cpu")
    assert "model=began" in args and args[-1] == "model.gamma=0.7" and "model.pack=1" in args  # the paper's BEGAN


def test_a_protocol_without_a_sweep_keeps_its_key():
    """Cells written before the sweep and eval_samples fields existed still belong to their protocol (they collect)."""
    for name, protocol in PRESETS.items():
        if not protocol.sweep:
            old = {k: v for k, v in asdict(protocol).items() if k not in ("sweep", "eval_samples")}
            assert protocol.key() == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16], name
    assert PRESETS["mnist5k-gamma"].key() != PRESETS["mnist5k"].key()
    assert (
        replace(PRESETS["mnist5k"], eval_every=500, eval_samples=1000).key()
        != replace(PRESETS["mnist5k"], eval_every=500).key()
    )


def _args(**given):
    keys = ("models", "seeds", "steps", "num_samples", "num_real", "network", "data_root", "kid_subset_size")
    return argparse.Namespace(**{"preset": "smoke", "eval_every": None, "sweep": None, **dict.fromkeys(keys), **given})


def test_sweep_option_derives_rows_from_any_preset_keeping_its_row_settings():
    protocol = harness.build_protocol(_args(sweep="began:gamma=0.3,0.7", models="dcgan"))
    assert protocol.models == ("began-gamma0.3", "began-gamma0.7", "dcgan")
    assert protocol.model_hparams["began-gamma0.3"] == {"n": 16, "h": 16, "z_dim": 16, "gamma": 0.3}  # smoke's sizes
    assert protocol.row("began-gamma0.7").paper and protocol.sweep == ("began", "gamma", (0.3, 0.7))
    assert harness.build_protocol(_args(sweep="began:lr_decay_window=10,20")).model_hparams[
        "began-lr_decay_window10"
    ] == {"n": 16, "h": 16, "z_dim": 16, "lr_decay_window": 10}


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--sweep", "began:gama=0.3"], "--sweep 'gama' is not a numeric hyper-parameter of began; sweep one of"),
        (["--sweep", "began:skip=0,1"], "--sweep 'skip' is not a numeric hyper-parameter of began"),
        (["--sweep", "began:gamma=0.3,x"], "--sweep value 'x' is not a number for gamma"),
        (["--sweep", "began:gamma=0.3,0.3"], "a sweep of gamma needs distinct values"),
        (["--sweep", "stylegan:gamma=1"], "--sweep names row 'stylegan', which is neither a row"),
        (["--sweep", "gamma=0.3"], "--sweep 'gamma=0.3' is not ROW:HPARAM=V1,V2,..."),
        (["--preset", "mnist5k-gamma", "--sweep", "began:gamma=0.3"], "this preset already sweeps gamma of row began"),
    ],
)
def test_bad_sweeps_are_one_sentence_and_nonzero(argv, message, tmp_path, capsys):
    out = tmp_path / "bad"
    args = list(FAST)
    if "--preset" in argv:
        args[1] = argv[argv.index("--preset") + 1]
        argv = argv[2:]
    assert compare.main(args + argv + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


# -- the reference of the memorisation column ------------------------------------------------------------------------
def test_held_out_reference_only_where_no_model_trains_on_the_real_images():
    assert harness.held_out_reference(PRESETS["smoke"]) and harness.held_out_reference(PRESETS["cifar10"])
    assert not harness.held_out_reference(PRESETS["mnist5k"])  # scored against the training set itself
    assert not harness.held_out_reference(replace(PRESETS["smoke"], data="folder"))


def test_training_features_are_the_real_statistics_where_they_are_the_same_images(tmp_path):
    protocol = replace(PRESETS["smoke"], real_split="train", num_real=5000)  # every one of the 1,437 train digits
    real = SimpleNamespace(count=1437, kid_max=1437)
    assert harness.training_statistics(protocol, None, tmp_path, "cpu", real) is real


# -- end to end: a smoke-sized gamma sweep with --eval-every ----------------------------------------------------------
SWEEP = FAST + ["--sweep", "began:gamma=0.3,0.7", "--models", "dcgan", "--seeds", "0,1", "--eval-every", "1"]


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("claims") / "sweep"
    assert compare.main(SWEEP + ["--out", str(out)]) == 0
    return out


def _table(out: Path) -> tuple[list[str], dict[str, list[str]], str]:
    head, rows = (out / "table.md").read_text().split("\n\n")[0].splitlines()[0], {}
    for line in (out / "table.md").read_text().split("\n\n")[0].splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return [c.strip() for c in head.strip("|").split("|")][1:], rows, (out / "table.md").read_text().split("\n\n")[1]


@pytest.mark.slow
def test_a_sweep_with_eval_every_gives_the_new_columns_and_the_three_plots(sweep_run):
    header, rows, note = _table(sweep_run)
    assert list(rows) == ["began-gamma0.3", "began-gamma0.7", "dcgan"]
    memo, conv = header.index("memorisation_ratio"), header.index("convergence_spearman")
    assert all(r[memo] != "n/a" and "**" not in r[memo] for r in rows.values())  # never bolded
    assert rows["dcgan"][conv] == "n/a" and rows["began-gamma0.3"][conv] != "n/a"  # DCGAN names no measure
    for name in ("gamma_tradeoff.png", "memorisation.png", "convergence.png"):
        assert (sweep_run / name).stat().st_size > 0, name
    assert "Sweep: rows began-gamma0.3, began-gamma0.7 are row began with gamma = 0.3, 0.7" in note
    assert "the same median for the 60 real images of the test split, which no model trains on" in note
    assert "began-gamma0.3: M_global" in note and "dcgan:" not in note.split("convergence_spearman:")[1]
    assert "of the protocol's" not in note  # every row has every seed

    cell = json.loads((sweep_run / "cells" / "began-gamma0.7-seed1.json").read_text())
    assert set(cell["wall_time_s"]) == {"train", "curve", "metrics"} and cell["wall_time_s"]["curve"] > 0
    m = cell["memorisation"]
    assert m["ratio"] == m["generated_median"] / m["reference_median"] == cell["metrics"]["memorisation_ratio"]["value"]
    assert (m["reference"], m["num_training"], m["num_reference"]) == ("held-out", 1437, 60)
    points = cell["convergence"]["points"]
    assert cell["convergence"]["measure"] == "M_global" and [p["step"] for p in points] == [1, 2, 3, 4]
    assert [p["fid"] for p in points] == [p["value"] for p in cell["curve"]]
    log = {
        r["step"]: r["M_global"]
        for r in map(
            json.loads, (sweep_run / "runs" / "began-gamma0.7-seed1" / "metrics.jsonl").read_text().splitlines()
        )
    }
    assert [p["measure"] for p in points] == [log[p["logged_step"]] for p in points]
    rho = spearman([p["measure"] for p in points], [p["fid"] for p in points])
    assert cell["metrics"]["convergence_spearman"]["value"] == rho
    pairs = torch.load(sweep_run / "cells" / "began-gamma0.7-seed1.nearest.pt", weights_only=True)
    assert pairs["generated"].shape == pairs["training"].shape == (8, 1, 32, 32)
    assert torch.all(pairs["distance"][1:] >= pairs["distance"][:-1])  # the closest first
    assert pairs["distance"][0] == min(pairs["distance"]) and float(pairs["distance"][0]) <= m["generated_median"]


@pytest.mark.slow
def test_a_row_with_fewer_finished_seeds_than_the_protocol_says_so_in_the_note(sweep_run, tmp_path):
    out = tmp_path / "partial"
    shutil.copytree(sweep_run, out)
    for path in (out / "cells").glob("began-gamma0.7-seed1.*"):  # as if that cell were still training
        path.unlink()
    assert compare.main(SWEEP + ["--out", str(out), "--collect"]) == 0
    header, rows, note = _table(out)
    assert "±" not in rows["began-gamma0.7"][0] and "±" in rows["began-gamma0.3"][0]
    rows_note = note.split(" Rows: ")[1].split(". Sweep:")[0]
    assert rows_note == (
        "began-gamma0.3: model began; every option that is not in its paper off | began-gamma0.7: model began; "
        "every option that is not in its paper off; seeds [0] of the protocol's [0, 1] | dcgan: its paper's "
        "algorithm and defaults"
    )
    cells = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    present = [(0.3, "began-gamma0.3"), (0.7, "began-gamma0.7")]
    assert harness.sweep_title("began", present, cells) == (
        "row began, mean ± std over each point's seeds (0.3: [0, 1], 0.7: [0]); one seed: no bar"
    )
    assert harness.sweep_title("began", present[:1], cells) == "row began, mean ± std over seeds [0, 1]"


def test_a_record_is_named_once_when_every_cell_shares_it_else_with_its_cells():
    cells = [{"model": m, "seed": s, "v": v} for m, s, v in [("dcgan", 0, "A"), ("dcgan", 1, "B"), ("began", 0, "A")]]
    assert harness.per_cell_text([cells[0], cells[2]], lambda c: c["v"]) == "A"
    assert harness.per_cell_text(cells, lambda c: c["v"]) == "B for dcgan-seed1; A for the other 2 cells"


@pytest.mark.slow
def test_a_note_names_each_classifier_and_version_when_the_cells_differ(sweep_run, tmp_path):
    out = tmp_path / "mixed"
    shutil.copytree(sweep_run, out)
    path = out / "cells" / "dcgan-seed1.json"
    cell = json.loads(path.read_text())
    clf, versions = cell["coverage_classifier"], cell["versions"]
    accuracy, sha, torch_version = f"{100 * clf['test_accuracy']:.1f}%", clf["weights_sha256"][:16], versions["torch"]
    assert f"{accuracy}, weights sha256 {sha}…); a class is covered" in _table(out)[2]  # one classifier, once
    clf["weights_sha256"] = "f" * 64  # as if retrained on another machine, which gives other bits
    versions["torch"] = "2.99.0"
    path.write_text(json.dumps(cell))
    assert compare.main(SWEEP + ["--out", str(out), "--collect"]) == 0
    note = _table(out)[2]
    assert (
        f"{accuracy}, weights sha256 {'f' * 16}… for dcgan-seed1; {accuracy}, weights sha256 {sha}… for the other 5 "
        f"cells); a class is covered" in note
    )
    assert (
        f"began-plugin {versions['began-plugin']}, torch 2.99.0, torch-fidelity {versions['torch-fidelity']} for "
        f"dcgan-seed1; began-plugin {versions['began-plugin']}, torch {torch_version}" in note
    )


@pytest.mark.slow
def test_cells_without_the_new_keys_still_collect(sweep_run, tmp_path, capsys):
    out = tmp_path / "old"
    shutil.copytree(sweep_run, out)
    for path in (out / "cells").glob("*.json"):  # as the harness wrote cells before memorisation and convergence
        cell = json.loads(path.read_text())
        if path.stem.startswith("dcgan") or path.stem == "began-gamma0.3-seed0":
            for key in ("memorisation", "convergence"):
                cell.pop(key)
            for key in ("memorisation_ratio", "convergence_spearman"):
                cell["metrics"].pop(key)
            path.with_suffix(".nearest.pt").unlink()
            path.write_text(json.dumps(cell))
    assert compare.main(SWEEP + ["--out", str(out), "--collect"]) == 0
    header, rows, note = _table(out)
    memo = header.index("memorisation_ratio")
    assert rows["dcgan"][memo] == "n/a" and "±" not in rows["began-gamma0.3"][memo]  # one seed of two left
    assert (
        "Cells scored before the column existed have no memorisation_ratio (began-gamma0.3-seed0, dcgan-seed0" in note
    )
    assert (out / "memorisation.png").stat().st_size > 0

    # every cell from before: the column is there, n/a throughout, and the note says why
    for path in (out / "cells").glob("*.json"):
        cell = json.loads(path.read_text())
        cell.pop("memorisation", None)
        cell["metrics"].pop("memorisation_ratio", None)
        path.write_text(json.dumps(cell))
    assert compare.main(SWEEP + ["--out", str(out), "--collect"]) == 0
    header, rows, note = _table(out)
    assert all(r[header.index("memorisation_ratio")] == "n/a" for r in rows.values())
    assert "memorisation_ratio n/a: every cell here was scored before the column existed" in note


@pytest.mark.slow
def test_collect_refuses_unreadable_nearest_pairs_before_rewriting_any_table(sweep_run, tmp_path, capsys):
    out = tmp_path / "damaged"
    shutil.copytree(sweep_run, out)
    (out / "cells" / "dcgan-seed1.nearest.pt").write_bytes(b"not a torch file")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert compare.main(SWEEP + ["--out", str(out), "--collect"]) == 2
    err = capsys.readouterr().err.strip()
    assert "the nearest pairs of cell dcgan-seed1 cannot be read" in err and len(err.splitlines()) == 1
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
