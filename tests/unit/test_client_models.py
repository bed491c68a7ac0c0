"""The client library's models and the server's response models name the same fields, so
a field renamed or dropped on one side fails here, not in a TD's script."""

from __future__ import annotations

import pytest
from studio_farm import models as client

from pipelines.assets import views as assets
from pipelines.farm import views as farm
from pipelines.identity import models as identity

PAIRS = [(client.Asset, assets.AssetOut), (client.Version, assets.VersionOut),
         (client.Media, assets.MediaOut), (client.Job, farm.JobOut), (client.Task, farm.TaskOut),
         (client.Attempt, farm.AttemptOut), (client.Layer, farm.LayerOut),
         (client.LayerDependency, farm.LayerDependencyOut), (client.Node, farm.NodeOut),
         (client.JobType, farm.JobTypeOut), (client.Me, identity.MeOut)]


@pytest.mark.parametrize("mine, theirs", PAIRS, ids=[p[0].__name__ for p in PAIRS])
def test_the_client_reads_every_field_the_server_answers(mine, theirs):
    assert set(mine.model_fields) == set(theirs.model_fields)


def test_an_answer_of_the_server_reads_into_the_client_model():
    example = {"id": "j", "kind": "layered", "name": "n", "status": "waiting", "priority": 1,
               "submitted_by": "u", "max_attempts": 1, "task_timeout_s": 1.0,
               "requirements": {"slots": 1.0, "gpus": 0, "memory_bytes": 0, "tags": []},
               "task_count": 1, "counts": {}, "reason": None, "bad_nodes": [], "target": None,
               "render": None, "layers": [{"name": "a", "kind": "command", "task_count": 1,
                                           "frames": "1", "chunk_size": 1, "depends_on": []}],
               "after": ["x"], "waiting_on": ["x"], "created_at": "t", "updated_at": None,
               "finished_at": None, "eta": None}
    job = client.Job.model_validate(farm.JobOut.model_validate(example).model_dump())
    assert job.layers[0].name == "a" and not job.done
