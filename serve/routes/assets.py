"""Assets and their versions."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from pipelines.assets.domain import AssetsDomain
from pipelines.assets.models import (
    AssetCreate,
    AssetKind,
    AssetPatch,
    AssetStatus,
    public_asset,
)
from pipelines.assets.views import AssetOut, AssetPage, DownloadOut, PreviewUrls, VersionList
from pipelines.identity.models import Principal
from pipelines.identity.permissions import Action
from pipelines.numbers import MAX_INT64
from serve.contract import errors
from serve.deps import Cursor, require

router = APIRouter(prefix="/assets", tags=["assets"])

Reader = Annotated[Principal, require(Action.ASSET_READ)]
VersionPath = Annotated[int, Path(ge=1, le=MAX_INT64, description="A version number, from 1.")]
Creator = Annotated[Principal, require(Action.ASSET_CREATE)]
Editor = Annotated[Principal, require(Action.ASSET_EDIT_OWN)]
Sort = Literal["name", "-name", "created_at", "-created_at", "updated_at", "-updated_at"]


def get_assets(request: Request) -> AssetsDomain:
    return request.app.state.platform.assets


AssetsDep = Annotated[AssetsDomain, Depends(get_assets)]
NOT_FOUND = errors(codes={404: ["asset_not_found"]})
VERSION_NOT_FOUND = errors(codes={404: ["version_not_found"]})


@router.post("", status_code=201, response_model=AssetOut, summary="Create an asset")
async def create_asset(body: AssetCreate, domain: AssetsDep, who: Creator) -> dict:
    return await domain.assets.create(who, body)


@router.get("", response_model=AssetPage, summary="List assets (cursor pagination, filters, sort)",
            responses=errors(codes={422: ["invalid_cursor"]}))
async def list_assets(
    domain: AssetsDep, who: Reader,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Cursor = None,
    sort: Sort = "-created_at", kind: AssetKind | None = None,
    status: AssetStatus | None = None,
    tag: Annotated[str | None, Query(max_length=40)] = None,
    owner: Annotated[str | None, Query(max_length=64)] = None,
    name_prefix: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> dict:
    return await domain.assets.list(
        who, limit=limit, cursor=cursor, sort=sort, kind=kind, status=status, tag=tag,
        owner=owner, name_prefix=name_prefix)


@router.get("/{asset_id}", response_model=AssetOut, summary="One asset", responses=NOT_FOUND)
async def get_asset(asset_id: str, domain: AssetsDep, who: Reader) -> dict:
    return public_asset(await domain.assets.get_doc(who, asset_id))


@router.patch("/{asset_id}", response_model=AssetOut,
              summary="Change name, description, tags or draft/review status",
              responses=errors(codes={404: ["asset_not_found"]}))
async def update_asset(asset_id: str, body: AssetPatch, domain: AssetsDep,
                       who: Editor) -> dict:
    return await domain.assets.update(who, asset_id, body)


# response_class=Response: a 204 carries no body, so no JSON media type either.
@router.delete("/{asset_id}", status_code=204, response_class=Response,
               summary="Delete (soft; objects go later)",
               responses=errors(codes={404: ["asset_not_found"], 409: ["asset_approved"]}))
async def delete_asset(asset_id: str, domain: AssetsDep, who: Editor) -> None:
    await domain.assets.delete(who, asset_id)


@router.get("/{asset_id}/versions", response_model=VersionList,
            summary="Every version of an asset, oldest first", responses=NOT_FOUND)
async def list_versions(asset_id: str, domain: AssetsDep, who: Reader) -> dict:
    return {"items": await domain.versions.list(who, asset_id), "next_cursor": None}


@router.get("/{asset_id}/versions/{number}/download", response_model=DownloadOut,
            summary="A short-lived presigned URL to download a version",
            responses=VERSION_NOT_FOUND)
async def download_version(asset_id: str, number: VersionPath, request: Request, domain: AssetsDep,
                           who: Reader) -> dict:
    ttl = request.app.state.platform.settings.download_url_ttl_s
    return await domain.versions.download_url(who, asset_id, number, ttl)


@router.get("/{asset_id}/versions/{number}/previews", response_model=PreviewUrls,
            summary="Presigned URLs of a version's previews (poster, proxy, filmstrip...)",
            responses=VERSION_NOT_FOUND)
async def version_previews(asset_id: str, number: VersionPath, request: Request, domain: AssetsDep,
                           who: Reader) -> dict:
    ttl = request.app.state.platform.settings.download_url_ttl_s
    return await domain.versions.preview_urls(who, asset_id, number, ttl)
