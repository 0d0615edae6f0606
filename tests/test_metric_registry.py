"""The metric registry: one spec per result key, and the table rules the benchmark harness reads from it."""

import dataclasses

import pytest

import began_plugin.metrics as M
from began_plugin.metrics import registry as R


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the registry for tests that register keys, so no test key leaks into the others."""
    monkeypatch.setattr(R, "_REGISTRY", dict(R._REGISTRY))
    return R


def test_a_duplicate_key_is_refused_and_the_first_spec_kept():
    with pytest.raises(M.MetricsError, match=r"metric key 'fid' is already registered") as e:
        M.register_metric(M.MetricSpec("fid", True, digits=5))
    assert "\n" not in str(e.value) and str(e.value).endswith(".")
    spec = M.metric_spec("fid")
    assert spec.higher_is_better is False and spec.digits == 2 and spec.title == "FID"


def test_a_new_key_registers_once_and_clashing_orders_or_families_are_refused(scratch_registry):
    spec = R.register_metric(R.MetricSpec("toy_fd", False, digits=1, order=35))
    assert spec.title == "toy_fd" and R.metric_spec("toy_fd") is spec
    assert R.table_keys().index("toy_fd") == R.table_keys().index("is") + 1  # order 35 sits between IS (30) and 40
    assert R.format_value("toy_fd", 2.25, 0.5) == "2.2 ± 0.5"  # round half to even on 2.25 and 0.5 exactly
    with pytest.raises(M.MetricsError, match="'toy_fd' is already registered"):
        R.register_metric(R.MetricSpec("toy_fd", False, digits=1))
    with pytest.raises(M.MetricsError, match=r"table order 35, which 'toy_fd' already has"):
        R.register_metric(R.MetricSpec("toy_kd", False, order=35))
    with pytest.raises(M.MetricsError, match=r"family 'kid' for network 'standin', as 'standin_kd'"):
        R.register_metric(R.MetricSpec("toy_kd", False, family="kid", network="standin"))
    with pytest.raises(M.MetricsError, match="takes a MetricSpec"):
        R.register_metric({"key": "toy_kd"})
    assert "toy_kd" not in [s.key for s in R.registered_metrics()]  # a refused spec leaves nothing behind


def test_a_spec_checks_its_fields_and_is_frozen():
    with pytest.raises(M.MetricsError, match=r"needs 'pixels', expected one of \['features', 'classifier', 'logits'\]"):
        M.MetricSpec("toy", True, needs="pixels")
    with pytest.raises(M.MetricsError, match="'Toy FD' is not a lower-case identifier"):
        M.MetricSpec("Toy FD", True)
    with pytest.raises(M.MetricsError, match="digits=-1"):
        M.MetricSpec("toy", True, digits=-1)
    with pytest.raises(M.MetricsError, match="order='1'"):
        M.MetricSpec("toy", True, order="1")
    with pytest.raises(TypeError):
        M.MetricSpec("toy", True, 3)  # everything after higher_is_better is keyword-only
    with pytest.raises(dataclasses.FrozenInstanceError):
        M.metric_spec("kid").digits = 2


def test_table_keys_are_the_columns_in_order():
    assert M.table_keys() == [
        "fid",
        "kid",
        "is",
        "standin_fd",
        "standin_kd",
        "standin_logit_score",
        "fd_unverified",
        "kd_unverified",
        "logit_score_unverified",
        "classes_covered",
        "class_kl",
        "confident_fraction",
        "manifold_fraction",
        "precision",
        "recall",
        "density",
        "coverage",
        "memorisation_ratio",
        "convergence_spearman",
    ]


def test_format_value_examples_worked_by_hand():
    assert M.format_value("kid", 0.012345, 0.00049) == "0.0123 ± 0.0005"  # KID: 4 decimals
    assert M.format_value("standin_kd", 0.1, None) == "0.1000"
    assert M.format_value("class_kl", 0.12345, 0.0204) == "0.123 ± 0.020"  # class_kl: 3 decimals
    assert M.format_value("fid", 12.3456, 1.2) == "12.35 ± 1.20"  # the rest: 2 decimals
    assert M.format_value("classes_covered", 9.5, 0.5477) == "9.50 ± 0.55"
    # one seed has no spread: the value alone, never "± 0.00"
    assert M.format_value("fid", 1.5, None) == "1.50" and M.format_value("fid", 1.5) == "1.50"
    assert M.format_value("recall", 0.5, 0.0) == "0.50 ± 0.00"  # a measured spread of 0 is still shown
    with pytest.raises(M.MetricsError, match=r"no metric is registered under 'fd'"):
        M.format_value("fd", 1.0, None)


def test_ranking_and_header_rules_of_every_column():
    specs = {k: M.metric_spec(k) for k in M.table_keys()}
    assert {k for k, s in specs.items() if s.higher_is_better} == {
        "is",
        "standin_logit_score",
        "logit_score_unverified",
        "classes_covered",
        "confident_fraction",
        "manifold_fraction",
        "precision",
        "recall",
        "density",
        "coverage",
        "memorisation_ratio",
        "convergence_spearman",
    }
    # shown, never bolded: neither end of memorisation_ratio is best, and convergence_spearman rates a model's measure
    assert {k for k, s in specs.items() if not s.ranked} == {
        "confident_fraction",
        "manifold_fraction",
        "memorisation_ratio",
        "convergence_spearman",
    }
    assert {k for k, s in specs.items() if s.tie_bolds_none} == {
        "classes_covered",
        "class_kl",
        "confident_fraction",
        "manifold_fraction",
        "precision",
        "recall",
        "density",
        "coverage",
    }
    assert [s.title for s in specs.values()][:4] == [
        "FID",
        "KID",
        "IS",
        "standin_fd",
    ]  # stand-in numbers never read FID
    assert {k: s.needs for k, s in specs.items() if s.needs != "features"} == {
        "is": "logits",
        "standin_logit_score": "logits",
        "logit_score_unverified": "logits",
        "classes_covered": "classifier",
        "class_kl": "classifier",
        "confident_fraction": "classifier",
        "manifold_fraction": "classifier",
    }


def test_every_exported_key_constant_has_a_spec_and_only_the_crosschecks_are_not_columns():
    constants = {name: getattr(M, name) for name in M.__all__ if name.startswith("KEY_")}
    assert len(constants) == 16 + 4 + 2  # + the unverified-weights keys, memorisation and convergence
    for name, key in constants.items():
        assert M.metric_spec(key).key == key, name
    columns = set(M.table_keys())
    assert {k for k in constants.values() if k not in columns} == {
        M.KEY_FID_PYTORCH_FID,
        M.KEY_STANDIN_FD_PYTORCH_FID,
        M.KEY_FD_UNVERIFIED_PYTORCH_FID,
    }
    assert columns <= set(constants.values())  # no column without its exported constant


def test_metric_keys_come_from_the_registry():
    assert (
        M.metric_keys("inception-offline")
        == M.metric_keys("inception")
        == {"fid": "fid", "fid_pytorch_fid": "fid_pytorch_fid", "kid": "kid", "is": "is"}
    )
    assert M.metric_keys("standin") == {
        "fid": "standin_fd",
        "fid_pytorch_fid": "standin_fd_pytorch_fid",
        "kid": "standin_kd",
        "is": "standin_logit_score",
    }


def test_a_network_specific_key_registered_later_is_used_for_that_network(scratch_registry):
    R.register_metric(R.MetricSpec("toy_fd", False, family="fid", network="toy-net"))
    assert M.metric_keys("toy-net") == {"fid": "toy_fd", "fid_pytorch_fid": "fid_pytorch_fid", "kid": "kid", "is": "is"}
    assert M.metric_keys("inception")["fid"] == "fid"
