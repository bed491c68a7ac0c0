from __future__ import annotations

import pytest

from tests.support.media import make_mp4


@pytest.fixture(scope="session")
def mp4_bytes(tmp_path_factory) -> bytes:
    return make_mp4(tmp_path_factory.mktemp("media") / "clip.mp4").read_bytes()
