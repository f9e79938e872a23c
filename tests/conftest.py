import os

import pytest

os.environ.setdefault("FPAR_TORCH_THREADS", "2")

from fpar_models.data import synthetic  # noqa: E402


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A folder holding the synthetic dataset as `synthetic/`."""
    root = tmp_path_factory.mktemp("data")
    synthetic.generate(root / "synthetic")
    return root
