"""Names people type and other people read (assets, jobs, users, studios): at least one
visible character, and none of the characters that hide or disguise text in a list or a
log line (control characters such as NUL, CR and LF; zero-width and bidirectional-override
characters, which make `exe.mov` display as `vom.exe`). A pattern, so that the rule is in
the OpenAPI document, not only in code."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

# Zero-width joiner and non-joiner (U+200C, U+200D) stay: Persian names and emoji use them.
_HIDDEN = r"\x00-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028-\u202e\u2060-\u206f\ufeff"
NAME_PATTERN = rf"^[^{_HIDDEN}]*[^\s{_HIDDEN}][^{_HIDDEN}]*$"
_VISIBLE_NAME = re.compile(NAME_PATTERN)


def is_visible_name(text: str) -> bool:
    """The same rule for names that arrive outside a model (a form's file name)."""
    return _VISIBLE_NAME.fullmatch(text) is not None


AssetName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                             max_length=200, pattern=NAME_PATTERN)]
JobName = AssetName
PersonName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                              max_length=120, pattern=NAME_PATTERN)]
