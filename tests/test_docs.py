"""Docs that state what the code does are checked against the code."""
from pathlib import Path

from fpar_models.presets import markdown_table

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_preset_table_in_the_docs_is_what_get_presets_returns():
    text = (DOCS / "models.md").read_text()
    table = text.split("<!-- presets:begin -->\n")[1].split("\n<!-- presets:end -->")[0]
    assert table == markdown_table(), "docs/models.md is stale: paste `python -m fpar_models.presets` in"


def test_every_experiment_body_in_the_docs_expands_into_valid_configs():
    from fpar_models.experiment import check_search, expand, requests_in

    requests = requests_in((DOCS / "experiments.md").read_text())
    assert len(requests) >= 21 and any(r.search for r in requests)
    for request in requests:
        if request.search:
            check_search(request, 200)  # its space's ends and choices make valid configs
        else:
            assert expand(request, 200), request.name


def test_the_cost_table_in_the_docs_is_what_the_planner_makes_of_its_bodies():
    from fpar_models.experiment import cost_table, requests_in

    text = (DOCS / "experiments.md").read_text()
    table = text.split("<!-- costs:begin -->\n")[1].split("\n<!-- costs:end -->")[0]
    assert table == cost_table(requests_in(text)), "docs/experiments.md is stale: paste `python -m fpar_models.experiment` in"
