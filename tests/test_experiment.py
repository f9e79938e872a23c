"""Experiments: grid expansion, validation that names the path and value, the table."""
import statistics

import pytest

from fpar_models.experiment import (
    ExperimentRequest,
    GridError,
    expand,
    render,
    set_path,
    summarize,
)
from fpar_models.formatting import format_number

BASE = {"preset": "ms-regression", "dataset": "synthetic", "pretrained": "none"}


def test_paths_index_the_config_as_a_client_writes_it():
    assert set_path({}, "stages.1.lr", 2e-4) == {"stages": [{}, {"lr": 2e-4}]}
    assert set_path({"stages": [{"epochs": 3}]}, "stages.1.part_lr.heads", 1e-4) == {
        "stages": [{"epochs": 3}, {"part_lr": {"heads": 1e-4}}]}
    assert set_path({"frames": 16}, "frames", 7) == {"frames": 7}
    body = {"model": {"heads": [{"alpha": 1}]}}
    assert set_path(body, "model.heads.0.alpha", 0.1) == {"model": {"heads": [{"alpha": 0.1}]}}
    assert body == {"model": {"heads": [{"alpha": 1}]}}  # the base is not modified
    with pytest.raises(GridError) as info:
        set_path({"frames": 16}, "frames.lr", 1)
    assert info.value.loc == ["grid", "frames.lr"]


def test_the_grid_times_trials_becomes_validated_children():
    request = ExperimentRequest(name="table 3", base={**BASE, "seed": 10}, trials=3, grid={
        "stages.1.lr": [1e-4, 2e-4], "model.heads.0.alpha": [0.1, 0.5], "stages.1.milestones": [[45, 90]]})
    children = expand(request, 200)
    assert len(children) == 2 * 2 * 1 * 3
    first = children[0]
    assert first.point == {"stages.1.lr": 1e-4, "model.heads.0.alpha": 0.1, "stages.1.milestones": [45, 90]}
    assert [c.config.seed for c in children[:3]] == [10, 11, 12] and [c.trial for c in children[:3]] == [0, 1, 2]
    cfg = first.config
    assert cfg.stages[1].lr == 1e-4 and cfg.stages[1].milestones == [45, 90]
    assert cfg.model.heads[0].alpha == 0.1 and cfg.model.heads[0].kind == "motion_segmentation"  # the rest kept
    assert cfg.stages[1].part_lr == {"heads": 1e-4, "layer4": 4e-4, "cam": 4e-4}  # the preset's, untouched


@pytest.mark.parametrize("grid, path, words", [
    ({"stages.1.lr": [1e-4, -1]}, "stages.1.lr", "-1"),
    ({"stages.1.lrr": [1e-4]}, "stages.1.lrr", "Extra inputs"),
    ({"stages.1.lr": [1e-4], "model.heads.0.alpha": [0.5, "lots"]}, "model.heads.0.alpha", '"lots"'),
    ({"frames": [16, 0]}, "frames", "0"),
])
def test_a_bad_point_names_its_path_and_value(grid, path, words):
    with pytest.raises(GridError) as info:
        expand(ExperimentRequest(name="x", base=BASE, grid=grid), 200)
    assert info.value.loc == ["grid", path] and words in str(info.value)


def test_limits_and_a_bad_base():
    with pytest.raises(GridError, match="FPAR_MAX_EXPERIMENT_JOBS") as info:
        expand(ExperimentRequest(name="x", base=BASE, grid={"frames": [4, 7, 16]}, trials=3), 8)
    assert info.value.loc == ["grid"]
    with pytest.raises(GridError) as info:
        expand(ExperimentRequest(name="x", base={"preset": "nope"}), 8)
    assert info.value.loc == ["base"]
    with pytest.raises(ValueError, match="dotted path"):
        ExperimentRequest(name="x", grid={"stages..lr": [1]})


def test_the_table_is_mean_and_sample_std_of_the_succeeded_trials():
    a, b = {"lr": 1e-4}, {"lr": 2e-4}
    trials = [(a, 0.5), (a, 0.7), (a, None), (b, 0.55), (b, None)]  # None: failed, or not ended
    first, second = summarize(trials)
    assert first["trials"] == 2 and first["mean"] == pytest.approx(0.6)
    assert first["std"] == pytest.approx(statistics.stdev([0.5, 0.7])) and (first["min"], first["max"]) == (0.5, 0.7)
    assert second["trials"] == 1 and second["std"] == 0 and first["best"] and not second["best"]
    md = render([first, second], ["lr"], "md")
    assert "| lr | trials | mean | std |" in md and "| 1e-4 | 2 | **60.00** | 14.14 |" in md
    csv = render([first, second], ["lr"], "csv").splitlines()
    assert csv[0] == "lr,trials,mean,std" and csv[2].startswith("2e-4,1,0.55,0.0")


def test_numbers_as_the_reports_write_them():
    assert [format_number(x) for x in (1e-4, 2.5e-4, 5e-5, 0.5, 45.0, 0.01)] == ["1e-4", "2.5e-4", "5e-5", "0.5", "45", "0.01"]


def test_points_list_rows_that_are_not_a_product_and_cross_the_grid():
    request = ExperimentRequest(name="table 2", base=BASE, grid={"frames": [7, 16]}, points=[
        {"stages.1.lr": 1e-4, "model.heads.0.alpha": 1e-2}, {"stages.1.lr": 3e-4}])
    assert request.columns == ["stages.1.lr", "model.heads.0.alpha", "frames"]
    children = expand(request, 200)
    assert [c.point for c in children] == [
        {"stages.1.lr": 1e-4, "model.heads.0.alpha": 1e-2, "frames": 7}, {"stages.1.lr": 1e-4, "model.heads.0.alpha": 1e-2, "frames": 16},
        {"stages.1.lr": 3e-4, "frames": 7}, {"stages.1.lr": 3e-4, "frames": 16}]
    assert children[2].config.model.heads[0].alpha == 0.5  # the base's where a point says nothing
    table = summarize([(c.point, 0.5) for c in children])
    assert render(table, request.columns, "csv").splitlines()[3] == "3e-4,,7,1,0.5,0.0"
    with pytest.raises(GridError) as info:
        expand(ExperimentRequest(name="x", base=BASE, points=[{"stages.1.lr": 0}]), 200)
    assert info.value.loc == ["points", "stages.1.lr"]
