"""LiveLog through its storage port: what the task prints while a shipment is in flight
goes out in the next shipment, never as empty chunks (a task printing steadily once kept
the shipper sending empty chunks until it ended, so followers saw nothing live)."""

from __future__ import annotations

from pipelines.farm.node.live_log import LiveLog


class Store:
    def __init__(self) -> None:
        self.chunks: dict[str, bytes] = {}
        self.during_put = lambda: None

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self.during_put()  # the task keeps printing while the PUT is on the wire
        self.chunks[key] = data


async def test_output_printed_during_a_shipment_goes_in_the_next(tmp_path):
    store = Store()
    live = LiveLog(store, "p", tmp_path / "task.log", on_line=lambda line: None)  # type: ignore[arg-type]
    printed = iter(f"line {i}\n" for i in range(1000))
    store.during_put = lambda: live.append(next(printed))
    live.append("first\n")
    for _ in range(3):
        await live.ship()
    assert all(store.chunks.values()), [k for k, v in store.chunks.items() if not v]
    assert len(store.chunks) == 3  # one chunk per shipment, not one per print
    assert b"".join(store.chunks[k] for k in sorted(store.chunks)) == b"first\nline 0\nline 1\n"
    assert live.last_line == "line 2"  # printed during the last PUT: shipped next time
