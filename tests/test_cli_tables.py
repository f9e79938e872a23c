"""The CLI's tables at 60, 80 and 120 columns: every id whole on one line, no line wider
than the terminal, and the columns that give way in each table's order."""
import io
import re

import pytest
from rich.cells import cell_len
from rich.console import Console

from cli import tables
from fpar_models.presets import PRESETS

MODEL, OTHER_MODEL = "m_63612a9b0c4d5e6f", "m_0123456789abcdef"
JOBS = [
    {"id": "tr_63612a9b0c4d5e6f", "kind": "train", "status": "succeeded", "progress": {"fraction": 1.0},
     "created_at": "2026-12-02T00:50:20.123456+00:00", "result": {"model": MODEL, "best_val_acc": 0.8123}},
    {"id": "pr_0123456789abcdef", "kind": "predict", "status": "succeeded", "progress": None,
     "created_at": "2026-12-02T00:51:20+00:00", "result": {"model": MODEL, "top_k": [{"label": "take_bread"}]}},
    {"id": "tr_fedcba9876543210", "kind": "train", "status": "failed", "progress": {"fraction": 0.25},
     "created_at": "2026-12-02T00:52:20+00:00",
     "error": {"message": "CUDA out of memory in [bold]stage 2[/bold], tried to allocate 2.00 GiB"}},
    {"id": "tr_aaaabbbbccccdddd", "kind": "train", "status": "running", "progress": {"fraction": 0.4},
     "created_at": "2026-12-02T00:53:20+00:00"},
]
MODELS = [
    {"id": MODEL, "preset": "ms-classification", "arch": "egornn", "classes": ["c"] * 61, "frames": 16,
     "image_size": 224, "best_val_acc": 0.8123, "test_acc": 0.79, "inference_precision": "bf16",
     "inference": [{"backend": "torch"}, {"backend": "openvino"}]},
    {"id": OTHER_MODEL, "preset": None, "arch": "egornn", "classes": ["c"] * 4, "frames": 4, "image_size": 64,
     "best_val_acc": 0.5, "test_acc": None, "inference": []},
]
EXPERIMENTS = [
    {"id": "ex_0123456789abcdef", "name": "stage-2 learning rate x memory size, three trials", "status": "running",
     "created_at": "2026-12-02T00:53:20+00:00", "progress": {"ended": 3, "total": 6}},  # no jobs: not recounted
]
PRESET_LIST = [{"name": p.name, "source": p.source} for p in PRESETS.values()]
RANKING = {"model": MODEL, "top_k": [{"label": "take_bread", "probability": 0.5},
                                     {"label": "close_coffee", "probability": 0.2}]}

# what each table shows as the terminal narrows: the least useful columns go first
SHOWN = {
    ("jobs", 120): ["id", "kind", "status", "progress", "created", "result"],
    ("jobs", 80): ["id", "kind", "status", "progress", "result"],
    ("jobs", 60): ["id", "status", "result"],
    ("models", 120): ["id", "preset", "classes", "frames", "size", "val acc", "test acc", "precision", "served by"],
    ("models", 80): ["id", "preset", "frames", "val acc", "test acc"],
    ("models", 60): ["id", "preset", "val acc"],
    ("experiments", 120): ["id", "name", "status", "jobs", "created"],
    ("experiments", 80): ["id", "name", "status", "jobs"],
    ("experiments", 60): ["id", "name", "status", "jobs"],
}
TABLES = {"jobs": (tables.jobs, JOBS), "models": (tables.models, MODELS),
          "experiments": (tables.experiments, EXPERIMENTS), "presets": (tables.presets, PRESET_LIST),
          "ranking": (tables.ranking, RANKING)}


def render(table, width: int) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text().splitlines()


def keys(data) -> set[str]:
    """What a user copies from the table into the next command: ids, and preset names."""
    found = set(re.findall(r"\b(?:tr|pr|m|ex)_[0-9a-f]{16}\b", repr(data)))
    return found | ({p["name"] for p in data} if data is PRESET_LIST else set())


@pytest.mark.parametrize("width", [60, 80, 120])
@pytest.mark.parametrize("name", TABLES)
def test_every_id_whole_on_one_line_and_no_line_wider_than_the_terminal(name, width):
    build, data = TABLES[name]
    table = build(data, width)
    lines = render(table, width)
    assert max(cell_len(line) for line in lines) <= width, "\n".join(lines)
    missing = [key for key in keys(data) if not any(key in line for line in lines)]
    assert not missing, "\n".join(lines)
    if (name, width) in SHOWN:
        assert [c.header for c in table.columns] == SHOWN[name, width], "\n".join(lines)


def test_a_result_keeps_its_model_id_whole_when_it_wraps():
    lines = render(tables.jobs(JOBS, 60), 60)
    assert any(MODEL in line for line in lines if "tr_63612a9b0c4d5e6f" in line), "\n".join(lines)
    assert any("val 0.812" in line for line in lines)  # wrapped under the id, not cut


def test_cells_are_text_not_markup():
    text = "\n".join(render(tables.jobs(JOBS, 160), 160))
    assert "[bold]stage 2[/bold]" in text


def test_a_terminal_narrower_than_the_other_columns_keeps_the_id():
    lines = render(tables.jobs(JOBS, 30), 30)
    assert all(j["id"] in "\n".join(lines) for j in JOBS) and max(map(cell_len, lines)) <= 30


def test_an_experiments_progress_is_shown_as_the_api_sends_it():
    assert any("3/6" in line for line in render(tables.experiments(EXPERIMENTS, 120), 120))
