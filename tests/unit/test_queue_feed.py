"""The feed reads each ready task once while a job drains: a window that runs low is
refilled from past the last task read, not read again from the start."""

from __future__ import annotations

from pipelines.farm.control.feed import WINDOW, QueueFeed

JOB = {"_id": "j", "studio_id": "s", "status": "queued", "priority": 50, "created_s": 0.0}
NEEDS = {"slots": 1.0, "gpus": 0, "memory_bytes": 0, "tags": []}


class Store:
    """The two reads the feed makes, over one job's tasks, counting the tasks read."""

    def __init__(self, tasks: int) -> None:
        self.tasks = [{"_id": f"j-{i:05d}", "job_id": "j", "studio_id": "s", "kind": "command",
                       "index": i, "state": "ready", "requirements": NEEDS}
                      for i in range(tasks)]
        self.read = 0

    async def schedulable_jobs(self) -> dict:
        return {"j": JOB}

    async def job(self, job_id: str) -> dict:
        return JOB

    async def ready_of(self, job_id: str, limit: int, after: int = -1) -> list[dict]:
        found = [t for t in self.tasks if t["state"] == "ready" and t["index"] > after][:limit]
        self.read += len(found)
        return found


async def test_a_job_drained_a_window_at_a_time_has_each_task_read_once():
    store = Store(10 * WINDOW)
    feed = QueueFeed(store, clock=lambda: 0.0)
    feed.job_changed("j")
    await feed.refresh()
    placed = []
    while len(placed) < len(store.tasks):
        await feed.refresh()
        # The scheduler takes the queue's first tasks of the job, as a round does.
        batch = sorted(feed.queue.views.values(), key=lambda v: v.index)[:WINDOW // 2 + 1]
        assert batch, "the queue ran dry before the job did"
        for view in batch:
            feed.queue.discard(view.task_id)
            store.tasks[view.index]["state"] = "leased"
            placed.append(view.index)
        feed.placed({"j"})
    assert placed == list(range(len(store.tasks)))  # in order, none twice
    assert store.read == len(store.tasks)
