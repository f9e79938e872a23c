"""Docs that state what the code does are checked against the code."""
from pathlib import Path

from fpar_models.presets import markdown_table

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_preset_table_in_the_docs_is_what_get_presets_returns():
    text = (DOCS / "models.md").read_text()
    table = text.split("<!-- presets:begin -->\n")[1].split("\n<!-- presets:end -->")[0]
    assert table == markdown_table(), "docs/models.md is stale: paste `python -m fpar_models.presets` in"
