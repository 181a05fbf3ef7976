"""Hotlists: the plates and e-bike RFID tags whose sighting raises an alert.

Values are normalised as ingest normalises what devices read, so an entry matches the reads:
plates upper-cased with separators dropped and the province character kept (``浙a·12345``
becomes ``浙A12345``); tags upper-case hex (``e2:80:11`` becomes ``E28011``). The rule
detectors notice every change (a version counter bumped by the database).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from fastapi import status as http

from api.auth import Action, Principal, require
from api.dependencies import Conn
from api.routes.common import invalid, responses
from api.schemas import HotlistEntryBody, HotlistEntryOut, HotlistEntryPatch
from ingest.adapters import normalise_plate
from watchpost import store

__all__ = ["normalise_value", "router"]

router = APIRouter(tags=["hotlists"])

ListName = Annotated[Literal["plates", "rfid_tags"], Path(description="plates or rfid_tags")]
EntryId = Annotated[int, Path(ge=1, description="Entry id")]

# An optional province (or other CJK) character, 4-8 letters and digits, an optional suffix such as 挂 or 学.
_PLATE = re.compile(r"^[\u3400-\u9fff]?[A-Z0-9]{4,8}[\u3400-\u9fff]?$")
_TAG_SEPARATORS = str.maketrans("", "", " :-_.")
_TAG = re.compile(r"^[0-9A-F]{8,64}$")


def normalise_value(list_name: str, value: str) -> str:
    """``value`` as stored on ``list_name``; ValueError with the reason when it is no plate or tag."""
    if list_name == "plates":
        plate = normalise_plate(value)
        if plate is None:
            raise ValueError(f"value {value!r} says no plate was read; give the plate itself")
        if not _PLATE.match(plate):
            raise ValueError(
                f"value {value!r} is not a plate: expected an optional province character (浙), then 4 to 8 letters"
                " or digits and an optional suffix (挂, 学)"
            )
        return plate
    tag = unicodedata.normalize("NFKC", value).translate(_TAG_SEPARATORS).upper()
    if tag.startswith("0X"):
        tag = tag[2:]
    if not _TAG.match(tag):
        raise ValueError(f"value {value!r} is not an RFID tag: expected 8 to 64 hexadecimal digits")
    return tag


@router.get(
    "/hotlists/{list_name}",
    response_model=list[HotlistEntryOut],
    summary="Entries of a hotlist",
    responses=responses(403, 422),
)
def list_entries(
    conn: Conn, list_name: ListName, principal: Annotated[Principal, require(Action.READ_HOTLISTS)]
) -> list[dict[str, Any]]:
    return store.list_hotlist(conn, list_name=list_name)


@router.post(
    "/hotlists/{list_name}",
    response_model=HotlistEntryOut,
    status_code=http.HTTP_201_CREATED,
    summary="Add a plate or tag",
    description="The value is normalised; a value already on the list is 409.",
    responses=responses(403, 409, 422),
)
def add_entry(
    conn: Conn,
    list_name: ListName,
    body: HotlistEntryBody,
    principal: Annotated[Principal, require(Action.EDIT_HOTLISTS)],
) -> dict[str, Any]:
    try:
        value = normalise_value(list_name, body.value)
    except ValueError as exc:
        raise invalid(str(exc)) from None
    return store.add_hotlist_entry(
        conn,
        list_name=list_name,
        value=value,
        reason=body.reason,
        owner=body.owner,
        note=body.note,
        expires=body.expires,
        actor=principal.actor,
    )


@router.patch(
    "/hotlists/entries/{entry_id}",
    response_model=HotlistEntryOut,
    summary="Change an entry's reason, owner, note or expiry",
    responses=responses(403, 404, 422),
)
def update_entry(
    conn: Conn,
    entry_id: EntryId,
    body: HotlistEntryPatch,
    principal: Annotated[Principal, require(Action.EDIT_HOTLISTS)],
) -> dict[str, Any]:
    fields = body.model_dump(exclude_unset=True)
    for name in ("reason", "owner", "note"):
        if name in fields and fields[name] is None:
            raise invalid(f"{name} cannot be null (only expires can be cleared)")
    return store.update_hotlist_entry(conn, entry_id=entry_id, fields=fields)


@router.delete(
    "/hotlists/entries/{entry_id}",
    status_code=http.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Remove an entry",
    responses=responses(403, 404),
)
def delete_entry(
    conn: Conn, entry_id: EntryId, principal: Annotated[Principal, require(Action.EDIT_HOTLISTS)]
) -> Response:
    store.delete_hotlist_entry(conn, entry_id=entry_id)
    return Response(status_code=http.HTTP_204_NO_CONTENT)
