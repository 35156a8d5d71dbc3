import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Published reference data live in the shared folder beside the checkout (CI has it; a user's clone may not).
# ISOFLOP_SHARED points elsewhere (a test of the skip path sets it to a folder that does not exist).
SHARED = Path(os.environ.get("ISOFLOP_SHARED", REPO.parent / "shared"))

os.environ.setdefault("ISOFLOP_PROGRESS", "0")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def shared_file(relative: str) -> Path:
    """A file under the shared folder, or skip the calling test with a one-line reason naming it."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"reference data {path} not found (the shared folder is absent beside this checkout)")
    return path


@pytest.fixture
def default_config():
    from isoflop.config import validate_config

    return validate_config({})
