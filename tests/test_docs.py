"""Docs that state what the code does are checked against the code."""
from pathlib import Path

from fpar_models.presets import markdown_table

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_preset_table_in_the_docs_is_what_get_presets_returns():
    text = (DOCS / "models.md").read_text()
    table = text.split("<!-- presets:begin -->\n")[1].split("\n<!-- presets:end -->")[0]
    assert table == markdown_table(), "docs/models.md is stale: paste `python -m fpar_models.presets` in"


def test_every_experiment_body_in_the_docs_expands_into_valid_configs():
    import json
    import re

    from fpar_models.experiment import ExperimentRequest, expand

    text = (DOCS / "experiments.md").read_text()
    bodies = [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", text, re.S)]
    assert len(bodies) >= 20
    for body in bodies:
        assert expand(ExperimentRequest.model_validate(body), 200), body["name"]


def test_the_cost_table_in_the_docs_is_what_the_planner_makes_of_its_bodies():
    import json
    import re

    from fpar_models.experiment import ExperimentRequest, cost_table

    text = (DOCS / "experiments.md").read_text()
    table = text.split("<!-- costs:begin -->\n")[1].split("\n<!-- costs:end -->")[0]
    bodies = [ExperimentRequest.model_validate(json.loads(b)) for b in re.findall(r"```json\n(.*?)\n```", text, re.S)]
    assert table == cost_table(bodies), "docs/experiments.md is stale: paste `python -m fpar_models.experiment` in"
