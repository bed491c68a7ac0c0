"""Names others read keep no hidden characters: control, zero-width, bidirectional override."""

from __future__ import annotations

import pydantic
import pytest

from pipelines.assets.models import AssetCreate
from pipelines.farm.models import JobSubmit
from pipelines.identity.models import UserCreate

HIDDEN = ["a\x00b", "a\r\nb", "tab\there", "shot\u202evom.exe", "\u200b", "x\u2066y", "\ufeffx",
          "\x7f", "   ", "a\u061cb", "a\u200fb"]


@pytest.mark.parametrize("name", HIDDEN)
def test_hidden_characters_are_refused_in_every_name(name):
    with pytest.raises(pydantic.ValidationError):
        AssetCreate(name=name, kind="shot")
    with pytest.raises(pydantic.ValidationError):
        JobSubmit(kind="command", name=name)
    with pytest.raises(pydantic.ValidationError):
        UserCreate(email="a@b.example", name=name, password="correct horse battery",
                   role="artist")


def test_names_in_any_script_with_inner_spaces_are_kept_trimmed():
    assert AssetCreate(name="  Shot 010 – café 第一 ", kind="shot").name == "Shot 010 – café 第一"
    # Joiners are part of ordinary writing: a Persian name, an emoji sequence.
    for name in ("می\u200cخواهم", "crew \U0001F469\u200d\U0001F4BB"):
        assert AssetCreate(name=name, kind="shot").name == name
