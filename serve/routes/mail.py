"""The studio's outgoing mail, for admins: what was sent, what is waiting, what failed
(never a body: codes and links are the recipient's)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from pipelines.identity import audit as events
from pipelines.identity.mail_models import MailOut
from pipelines.identity.models import Page, Principal
from pipelines.identity.permissions import Action
from serve.contract import errors
from serve.deps import IdentityDep, PageParams, require

MailReader = Annotated[Principal, require(Action.MAIL_READ)]

router = APIRouter(prefix="/mail", tags=["users"])


@router.get("", response_model=Page[MailOut], summary="Outgoing mail, newest first",
            responses=errors(codes={422: ["invalid_cursor"]}))
async def list_mail(identity: IdentityDep, page: PageParams, principal: MailReader,
                    state: Annotated[Literal["queued", "sending", "sent", "failed"] | None,
                                     Query()] = None) -> Page[MailOut]:
    docs, next_cursor = await identity.outbox.list(principal.studio_id, state=state,
                                                   limit=page.limit, cursor=page.cursor)
    return Page[MailOut](items=[MailOut.of(d) for d in docs], next_cursor=next_cursor)


@router.post("/{mail_id}/retry", response_model=MailOut,
             summary="Send a failed message again (its tries counted afresh)",
             responses=errors(codes={404: ["mail_not_found"], 409: ["mail_not_failed"]}))
async def send_again(mail_id: str, identity: IdentityDep, principal: MailReader) -> MailOut:
    doc = await identity.outbox.send_again(principal.studio_id, mail_id)
    await identity.audit.record(principal.studio_id, events.MAIL_SENT_AGAIN,
                                actor=principal.actor(), target={"type": "mail", "id": mail_id})
    return MailOut.of(doc)
