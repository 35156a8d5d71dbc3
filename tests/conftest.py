import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

os.environ.setdefault("ISOFLOP_PROGRESS", "0")


@pytest.fixture
def default_config():
    from isoflop.config import validate_config

    return validate_config({})
