"""Integer fields take what JSON Schema calls an integer (45.0 too), nothing else."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from config.settings import Settings
from pipelines.numbers import MAX_INT64, VersionNumber
from serve.app import create_app

VERSION = TypeAdapter(VersionNumber)


@pytest.mark.parametrize("value", [45, 45.0, 1.0, float(2**40)])
def test_an_integral_number_is_an_integer(value):
    assert VERSION.validate_python(value) == int(value)


@pytest.mark.parametrize("value", [45.5, True, "7", float("nan"), float("inf"), 0.0, 2.0**64])
def test_anything_else_is_refused(value):
    with pytest.raises(ValidationError):
        VERSION.validate_python(value)


def test_the_document_states_integer_bounds_in_json_schema_words():
    schemas = create_app(Settings(env="test")).openapi()["components"]["schemas"]
    version = schemas["CommentCreate"]["properties"]["version"]["anyOf"][0]
    assert version == {"type": "integer", "description": "A version number, from 1.",
                       "minimum": 1, "maximum": MAX_INT64}
    assert schemas["UploadDeclare"]["properties"]["size"]["exclusiveMinimum"] == 0
