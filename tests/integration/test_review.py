"""Review over REST (comments, replies, mentions, edits, decisions) and replay over HTTP."""

from __future__ import annotations

import pytest

from tests.support.assets import create_asset, upload_simple
from tests.support.identity import register_studio

STROKE = {"tool": "pen", "color": "#ff8800", "width": 0.005,
          "points": [[0.1, 0.2], [0.15, 0.25], [0.2, 0.3]]}


@pytest.fixture
async def studio(http):
    return await register_studio(http, roles=("artist", "director", "producer"))


def comments_url(asset_id: str) -> str:
    return f"/api/v1/assets/{asset_id}/comments"


async def test_comments_anchor_to_frames_or_timecodes_and_validate(http, studio, mp4_bytes):
    asset = await create_asset(http, studio.artist.headers)
    await upload_simple(http, studio.artist.headers, asset["id"], mp4_bytes)
    url, headers = comments_url(asset["id"]), studio.director.headers
    bad = [
        {"body": ""},
        {"body": "x", "frame": 3, "timecode": {"start": "00:00:01:00", "end": "00:00:02:00"}},
        {"body": "x", "timecode": {"start": "00:00:02:00", "end": "00:00:01:00"}},
        {"body": "x", "timecode": {"start": "1:2:3", "end": "00:00:01:00"}},
        {"body": "x", "annotation": {"strokes": [{**STROKE, "points": [[1.5, 0.2]]}]}},
        {"body": "x", "annotation": {"strokes": []}},
        {"body": "x", "studio_id": "elsewhere"},
        {"body": "x", "author_id": studio.artist.user_id},
    ]
    for body in bad:
        response = await http.post(url, json=body, headers=headers)
        assert response.status_code == 422, (body, response.text)
    framed = await http.post(url, headers=headers, json={
        "body": "arm pops here", "frame": 12, "annotation": {"strokes": [STROKE]}})
    assert framed.status_code == 201, framed.text
    shown = framed.json()
    assert shown["version"] == 1 and shown["frame"] == 12 and isinstance(shown["seq"], int)
    assert shown["annotation"]["strokes"][0]["points"][0] == [0.1, 0.2]
    ranged = await http.post(url, headers=headers, json={
        "body": "hold longer", "timecode": {"start": "00:00:01:00", "end": "00:00:01:12"}})
    assert ranged.json()["timecode"] == {"start": "00:00:01:00", "end": "00:00:01:12"}
    unknown = await http.post(url, headers=headers,
                              json={"body": "hey @ghost", "mentions": ["ghost"]})
    assert unknown.json()["error"]["code"] == "unknown_mention"


async def test_replies_thread_and_only_authors_edit_or_delete(http, studio):
    asset = await create_asset(http, studio.artist.headers)
    url = comments_url(asset["id"])
    root = (await http.post(url, json={"body": "root"}, headers=studio.director.headers)).json()
    reply = await http.post(url, json={"body": "reply", "parent_id": root["id"]},
                            headers=studio.artist.headers)
    assert reply.json()["thread_id"] == root["id"]
    other = await create_asset(http, studio.artist.headers)
    wrong_parent = await http.post(comments_url(other["id"]), headers=studio.artist.headers,
                                   json={"body": "x", "parent_id": root["id"]})
    assert wrong_parent.json()["error"]["code"] == "invalid_parent"
    comment_url = f"/api/v1/comments/{root['id']}"
    for member in (studio.artist, studio.producer, studio.admin):
        assert (await http.patch(comment_url, json={"body": "hijack"}, headers=member.headers)
                ).json()["error"]["code"] == "not_author"
        assert (await http.delete(comment_url, headers=member.headers)).status_code == 403
    edited = await http.patch(comment_url, json={"body": "root, clearer"},
                              headers=studio.director.headers)
    assert edited.status_code == 200 and edited.json()["edited_at"] is not None
    page = await http.get(url, params={"limit": 1}, headers=studio.artist.headers)
    assert [c["body"] for c in page.json()["items"]] == ["root, clearer"]
    rest = await http.get(url, params={"cursor": page.json()["next_cursor"]},
                          headers=studio.artist.headers)
    assert [c["body"] for c in rest.json()["items"]] == ["reply"]
    assert (await http.delete(comment_url, headers=studio.director.headers)).status_code == 204
    listed = await http.get(url, headers=studio.artist.headers)
    assert [c["body"] for c in listed.json()["items"]] == ["reply"]
    assert (await http.patch(comment_url, json={"body": "again"}, headers=studio.director.headers)
            ).status_code == 404


async def test_decisions_move_the_asset_status(http, studio, mp4_bytes):
    asset = await create_asset(http, studio.artist.headers)
    url = f"/api/v1/assets/{asset['id']}/decisions"
    empty = await http.post(url, json={"decision": "approve"}, headers=studio.director.headers)
    assert empty.json()["error"]["code"] == "nothing_to_review"
    await upload_simple(http, studio.artist.headers, asset["id"], mp4_bytes)
    refused = await http.post(url, json={"decision": "approve"}, headers=studio.artist.headers)
    assert refused.status_code == 403
    changes = await http.post(url, json={"decision": "request_changes", "note": "timing"},
                              headers=studio.producer.headers)
    assert changes.status_code == 201 and changes.json()["status"] == "changes_requested"
    asset_url = f"/api/v1/assets/{asset['id']}"
    assert (await http.get(asset_url, headers=studio.artist.headers)
            ).json()["status"] == "changes_requested"
    stale = await http.post(url, json={"decision": "approve", "version": 7},
                            headers=studio.director.headers)
    assert stale.json()["error"]["code"] == "version_not_current"
    approved = await http.post(url, json={"decision": "approve", "version": 1},
                               headers=studio.director.headers)
    assert approved.status_code == 201 and approved.json()["version"] == 1
    assert (await http.get(asset_url, headers=studio.artist.headers)
            ).json()["status"] == "approved"
    frozen = await upload_simple(http, studio.artist.headers, asset["id"], mp4_bytes)
    assert frozen.status_code == 409  # an approved version is frozen


async def test_events_replay_over_http_with_pages_and_rooms(http, studio):
    first = await create_asset(http, studio.artist.headers)
    second = await create_asset(http, studio.artist.headers)
    for i in range(5):
        for asset in (first, second):
            response = await http.post(comments_url(asset["id"]), json={"body": f"n{i}"},
                                       headers=studio.director.headers)
            assert response.status_code == 201
    headers = studio.artist.headers
    everything = (await http.get("/api/v1/events", headers=headers)).json()
    seqs = [e["seq"] for e in everything["items"]]
    assert seqs == sorted(seqs) and everything["head_seq"] == seqs[-1]
    page = (await http.get("/api/v1/events", params={"after": seqs[2], "limit": 3},
                           headers=headers)).json()
    assert [e["seq"] for e in page["items"]] == seqs[3:6]
    nxt = (await http.get("/api/v1/events", params={"cursor": page["next_cursor"], "limit": 3},
                          headers=headers)).json()
    assert [e["seq"] for e in nxt["items"]] == seqs[6:9]
    room = f"asset:{first['id']}"
    only = (await http.get("/api/v1/events", params={"room": room}, headers=headers)).json()
    assert {e["room"] for e in only["items"]} == {room} and len(only["items"]) == 6
    other_user = f"user:{studio.director.user_id}"
    forbidden = await http.get("/api/v1/events", params={"room": other_user}, headers=headers)
    assert forbidden.status_code == 403
    ahead = (await http.get("/api/v1/events", params={"after": seqs[-1] + 10},
                            headers=headers)).json()
    assert ahead["resync"] is True
    outsider = await register_studio(http, roles=())
    theirs = await http.get("/api/v1/events", params={"room": room},
                            headers=outsider.admin.headers)
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "room_not_found"
