"""Job types: what a frontend draws a submission form from, and typed submission."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from pipelines.farm.models import TypedJobSubmit
from pipelines.farm.views import JobOut, JobTypeList
from serve.contract import errors
from serve.routes.jobs import SUBMIT_ERRORS, JobsDep, Reader, Submitter

router = APIRouter(tags=["farm"])
TypeName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]


@router.get("/job-types", response_model=JobTypeList,
            summary="Every job type: its settings' JSON schema and who may submit it")
async def list_job_types(jobs: JobsDep, who: Reader) -> dict:
    return {"items": jobs.job_types()}


@router.post("/job-types/{job_type}/jobs", status_code=201, response_model=JobOut,
             summary="Submit a job of a type, with `settings` as its schema says",
             responses=errors(403, codes={
                 404: ["job_type_not_found", *SUBMIT_ERRORS[404]], 409: SUBMIT_ERRORS[409],
                 422: ["invalid_settings", "not_a_video", *SUBMIT_ERRORS[422]]}))
async def submit_typed_job(job_type: TypeName, body: TypedJobSubmit, jobs: JobsDep,
                           who: Submitter) -> dict:
    return await jobs.submit_typed(who, job_type, body)
