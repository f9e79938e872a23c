"""Shared stages, init_from and early stopping: which configs may share a stage (computed
from what the stage reads), how an experiment's shares nest, and that a run started after
a trained model's stage trains as the one run would have."""
import pytest
import torch
from pydantic import ValidationError

from fpar_models.checkpoint import load_model
from fpar_models.experiment import ExperimentRequest, epochs_of, expand, plan, plan_shares, stage_key
from fpar_models.train import train

from model_helpers import small_config

TINY = {"image_size": 32, "stages": [{"epochs": 1}, {"epochs": 1}]}


def test_the_stage_key_reads_what_the_stage_reads():
    base = small_config("ms-classification")
    other_stage2 = small_config("ms-classification", stages=[{}, {"lr": 5e-4}])
    assert stage_key(base, 1) == stage_key(other_stage2, 1) and stage_key(base, 2) != stage_key(other_stage2, 2)
    assert stage_key(base, 1) != stage_key(small_config("ms-classification", seed=7), 1)
    assert stage_key(base, 1) != stage_key(small_config("ms-classification", stages=[{"lr": 5e-4}, {}]), 1)
    # the heads train in stage 2: their loss weight is not read before, their kind and shape are
    alpha = small_config("ms-classification", model={"heads": [{"kind": "motion_segmentation", "alpha": 2.0}]})
    assert stage_key(base, 1) == stage_key(alpha, 1) and stage_key(base, 2) != stage_key(alpha, 2)
    regression = small_config("ms-classification", model={"heads": [{"kind": "motion_segmentation",
                                                                      "mode": "regression"}]})
    assert stage_key(base, 1) != stage_key(regression, 1)
    # labels and the final test's protocol are not read by training
    assert stage_key(base, 2) == stage_key(small_config("ms-classification", model={"eval_stacks": 3}), 2)


def _children(grid, trials=1, base=None):
    request = ExperimentRequest(name="t", base=base or {"preset": "egornn-attention", "pretrained": "none"},
                                grid=grid, trials=trials)
    return [c.config for c in expand(request, 100)]


def test_a_stage_2_grid_shares_one_stage_1_per_seed():
    configs = _children({"stages.1.lr": [1e-4, 2e-4, 5e-4]}, trials=2)
    shares, starts = plan_shares(configs)
    assert [(s.stages, s.members) for s in shares] == [(1, [0, 2, 4]), (1, [1, 3, 5])]  # trial k: seed + k
    assert starts == [shares[0], shares[1]] * 3 and shares[0].dependants == [0, 2, 4]
    assert sum(map(epochs_of, configs)) == 6 * 350  # 200 + 150 epochs each, naively
    trainings = plan(configs, lambda share: f"m_{share.members[0]}")
    assert [c.until_stage for c in trainings.shared] == [1, 1] and trainings.epochs == 2 * 200 + 6 * 150
    assert [c.init_from.model for c in trainings.children] == ["m_0", "m_1"] * 3
    assert [c.stages for c in trainings.children] == [c.stages for c in configs]
    # a grid over stage 1 shares nothing, nor does a config alone
    assert plan_shares(_children({"stages.0.lr": [1e-4, 2e-4]})) == ([], [None, None])


def test_shares_nest_and_merge_when_nobody_else_starts_from_one():
    three = {"preset": "egornn-attention", "pretrained": "none", "stages": [{}, {}, {"epochs": 5}]}
    configs = _children({"stages.2.lr": [1e-4, 2e-4]}, base=three) + _children({"stages.1.lr": [7e-4]}, base=three)
    shares, starts = plan_shares(configs)
    # all three agree on stage 1, the first two on stage 2 as well
    assert [(s.stages, s.members) for s in shares] == [(1, [0, 1, 2]), (2, [0, 1])]
    assert shares[1].after is shares[0] and shares[0].dependants == [shares[1], 2]
    assert starts == [shares[1], shares[1], shares[0]]
    merged, _ = plan_shares(configs[:2])  # stage 1 shared by exactly those who share stage 2: one share
    assert [(s.stages, s.members, s.after) for s in merged] == [(2, [0, 1], None)]


def test_until_stage_and_init_from_are_checked_against_the_stages():
    with pytest.raises(ValidationError) as e:
        small_config(until_stage=3)
    assert e.value.errors()[0]["loc"] == ("until_stage",)
    with pytest.raises(ValidationError) as e:
        small_config(init_from={"model": "m_x", "stage": 2})
    assert e.value.errors()[0]["loc"] == ("init_from", "stage")
    cfg = small_config(init_from={"model": "m_x", "stage": 1}, stages=[{"epochs": 3}, {"epochs": 4}])
    assert cfg.trained_stages == range(1, 2) and epochs_of(cfg) == 4


@pytest.fixture(scope="module")
def straight(data_dir, tmp_path_factory):
    """TINY's two stages in one run (both tests below start from it or compare with it)."""
    return train(small_config(**TINY), data_dir, tmp_path_factory.mktemp("straight"))


def test_a_run_started_after_a_shared_stage_trains_as_the_one_run(data_dir, tmp_path, straight):
    first = train(small_config(**TINY, until_stage=1), data_dir, tmp_path / "shared")
    assert [r["stage"] for r in first.history] == [1]
    then = small_config(**TINY, init_from={"model": "shared", "stage": 1})
    second = train(then, data_dir, tmp_path / "second", resolve_model=lambda ref: tmp_path / ref / "model.pt")
    assert second.history[0]["from_model"] == "shared" and "from_model" not in second.history[1]
    timing = ("train_time_s", "data_wait_share", "from_model")
    for a, b in zip(second.history, straight.history, strict=True):
        assert {k: v for k, v in a.items() if k not in timing} == pytest.approx(
            {k: v for k, v in b.items() if k not in timing}, rel=1e-4, abs=1e-6)
    ours, _ = load_model(second.model_path)
    theirs, _ = load_model(straight.model_path)
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_a_reset_classifier_fine_tunes_and_patience_ends_a_stage(data_dir, tmp_path, straight):
    frozen = {"epochs": 4, "lr": 1e-12, "train": ["classifier"], "patience": 1}  # val_acc stays: 2 epochs
    source = straight
    cfg = small_config(image_size=32, stages=[{"epochs": 1}, frozen],
                       init_from={"model": "source", "stage": 1, "classes": "reset"})
    tuned = train(cfg, data_dir, tmp_path / "tuned",
                  resolve_model=lambda ref: {"source": source.model_path}.get(ref, tmp_path / ref / "model.pt"))
    assert [r["stage"] for r in tuned.history] == [2, 2]  # another classifier: the source's rows are not its
    assert tuned.early_stops == [{"stage": 2, "epoch": 2, "best_epoch": 1}]
    ours, _ = load_model(tuned.model_path)
    theirs, _ = load_model(source.model_path)
    assert not torch.equal(ours.classifier[1].weight, theirs.classifier[1].weight)
    with pytest.raises(ValueError, match="init_from.stage"):
        train(small_config(**TINY, init_from={"model": "tuned", "stage": 1}), data_dir, tmp_path / "x",
              resolve_model=lambda ref: tmp_path / ref / "model.pt")
