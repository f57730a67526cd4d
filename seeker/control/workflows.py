"""Work that builds on work: submitting tasks with inputs and dependencies,
task arrays, and what a task's end means for the tasks that run after it.

- `after`: a task is held (never placed) until every task it runs after
  has succeeded; when one fails or is cancelled, it is cancelled with that
  reason, and so on down the chain. A task can only be after tasks that
  exist already, so no cycle can be made.
- Arrays: N tasks of one spec made in one insert, each with the array's id
  and its index (SEEKER_ARRAY_INDEX in its container).

Nothing here lives in one process's memory: dependents are found by an
indexed query and changed by conditional updates, so several seekers can
share the database, and a release cut short is finished by `open_released`
(a periodic job)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime

from seeker.control.echoes import Echoes
from seeker.control.inputs import InputBroker
from seeker.models import AssignmentState, TaskSpec, TaskState
from seeker.store.events import TASK_CANCELLED
from seeker.store.task_document import task_json
from seeker.store.workflows import WorkflowStore
from serving.errors import InvalidInput, NotFound

log = logging.getLogger(__name__)

ARRAY_PREFIX = "arr-"
MAX_ARRAY = 10_000
MAX_WAITING = 1_000  # tasks one task may wait for, arrays expanded
ENDED_BADLY = (TaskState.FAILED.value, TaskState.CANCELLED.value)
SUMMARY_ORDER = [
    s.value
    for s in (
        TaskState.SUCCEEDED,
        TaskState.FAILED,
        TaskState.CANCELLED,
        TaskState.RUNNING,
        TaskState.DISPATCHED,
        TaskState.PENDING,
    )
]


def invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"invalid field(s): {field}", [{"field": field, "message": message}])


def parse_indices(array: int | str) -> list[int]:
    """`N` (0 to N-1) or `A-B` (A to B, both included) -> the indices."""
    if isinstance(array, int) or str(array).isdigit():
        first, last = 0, int(array) - 1
    else:
        start, sep, end = str(array).partition("-")
        if not (sep and start.isdigit() and end.isdigit()):
            raise invalid("array", f"{array!r}: give a count (e.g. 100) or a range (e.g. 0-99)")
        first, last = int(start), int(end)
    if last < first:
        raise invalid("array", f"{array!r} holds no index")
    if last - first + 1 > MAX_ARRAY:
        raise invalid("array", f"{array!r}: at most {MAX_ARRAY} tasks in one array")
    return list(range(first, last + 1))


class Workflows:
    def __init__(
        self,
        store: WorkflowStore,
        inputs: InputBroker,
        clock: Callable[[], datetime],
        kick: Callable[[], None],
        publish: Callable[[str, dict], None],
        stop: Callable[[str, dict], None],
        echoes: Echoes | None = None,
        joined: Callable[[list[str]], None] | None = None,
    ):
        """`kick`: tasks may be pending now (released); `joined(task_ids)`:
        tasks were submitted, the newest in the queue (default: `kick`)."""
        self.store = store
        self.inputs = inputs
        self.clock = clock
        self.kick = kick  # wakes the dispatcher
        self.joined = joined or (lambda task_ids: kick())
        self.publish = publish  # (event kind, task document)
        self.stop = stop  # (task id, assignment): stop a run on its helper
        self.echoes = Echoes() if echoes is None else echoes  # told of the submits that kick here

    # --- submitting ----------------------------------------------------------------

    def submit(self, spec: TaskSpec, indices: list[int] | None = None) -> list[dict]:
        """Make one task, or one per index of an array, all of one spec: its
        inputs described, held while the tasks it runs after have not all
        succeeded. Returns the new task documents."""
        body = spec.model_dump(mode="json")
        body["inputs"] = self.inputs.resolve(spec)
        body["after"], waiting = self._dependencies(spec)
        now = self.clock()
        if indices is None:
            docs = [self.store.document(secrets.token_hex(8), body, now, waiting)]
        else:
            array_id = ARRAY_PREFIX + secrets.token_hex(6)
            docs = [
                self.store.document(secrets.token_hex(8), body, now, waiting, (array_id, i))
                for i in indices
            ]
        if waiting:  # their success is not decided without looking for these
            self.store.depended_on(waiting)
        self.echoes.expect("tasks", [d["_id"] for d in docs])
        self.store.insert(docs)
        if waiting:
            # a dependency may have ended before these tasks were there to hear it
            ids = [d["_id"] for d in docs]
            self._catch_up(waiting, ids)
            docs = self.store.fetch(ids)
        self.joined([d["_id"] for d in docs])
        return docs

    def _dependencies(self, spec: TaskSpec) -> tuple[list[str], list[str]]:
        """(`after` as kept: the tasks and arrays given, and those whose
        output it reads; the task ids it waits for, arrays expanded). A 422
        names what does not exist."""
        outputs = [i.output_of for i in spec.inputs if i.output_of]
        after = list(dict.fromkeys([*spec.after, *outputs]))
        if not after:
            return [], []
        arrays = [a for a in after if a.startswith(ARRAY_PREFIX)]
        task_ids = [a for a in after if not a.startswith(ARRAY_PREFIX)]
        fields = {a: f"after.{i}" for i, a in enumerate(spec.after)}
        for i, inp in enumerate(spec.inputs):
            if inp.output_of:
                fields.setdefault(inp.output_of, f"inputs.{i}.output_of")
                if inp.output_of.startswith(ARRAY_PREFIX):
                    raise invalid(f"inputs.{i}.output_of", "an array has no output: name a task")
        known = self.store.states(task_ids)
        for name in task_ids:
            if name not in known:
                raise invalid(fields[name], f"no such task: {name}")
        for name in arrays:
            if self.store.array_of(name) is None:
                raise invalid(fields[name], f"no such array: {name}")
        waiting = list(dict.fromkeys([*task_ids, *self.store.array_tasks(arrays)]))
        if len(waiting) > MAX_WAITING:
            raise invalid("after", f"waits for {len(waiting)} tasks; at most {MAX_WAITING}")
        return after, waiting

    def _catch_up(self, waiting: list[str], ids: list[str]) -> None:
        for dep_id, dep in self.store.states(waiting).items():
            if dep["state"] == TaskState.SUCCEEDED.value:
                self.store.release(dep_id, source_of(dep), ids, self.clock())
            elif dep["state"] in ENDED_BADLY:
                self._cancel_after({dep_id: f"dependency {dep_id} {dep['state']}"}, ids)

    # --- a task ended ----------------------------------------------------------------

    def ended(self, task: dict) -> None:
        """`task` reached a final state: release what waited for its success,
        or cancel it (and what waits for that, and so on)."""
        task_id, state = task["_id"], task["state"]
        if state == TaskState.SUCCEEDED.value:
            ids = self.store.dependents(task_id)
            if ids and self.store.release(task_id, source_of(task), ids, self.clock()):
                self.kick()
        elif state in ENDED_BADLY:
            self._cancel_after({task_id: f"dependency {task_id} {state}"})

    def _cancel_after(self, why: dict[str, str], only: list[str] | None = None) -> None:
        """Cancel what waits for each task of `why` (task id -> the reason
        its dependents are cancelled with), then what waits for those, ...,
        a generation at a time: one query finds what waits for all of it."""
        ended = {t: (reason, reason) for t, reason in why.items()}  # (reason, first cause)
        while ended:
            found = self.store.dependents_of(list(ended), only)
            before, ended = ended, {}
            for dep_id, ids in found.items():
                reason, cause = before[dep_id]
                match: dict = {"waiting_for": dep_id}
                if only is not None:  # of the first generation, only these (just inserted)
                    match["_id"] = {"$in": ids}
                for doc in self.store.cancel(match, reason, self.clock()):
                    log.info("task %s cancelled: %s", doc["_id"], reason)
                    self.publish(TASK_CANCELLED, doc)
                    ended[doc["_id"]] = (f"dependency {doc['_id']} cancelled ({cause})", cause)
            only = None

    def open_released(self) -> int:
        """Finish releases a seeker stopped half-way (the periodic job)."""
        opened = self.store.open_released(self.clock())
        if opened:
            log.info("released %d task(s) whose dependencies had all succeeded", opened)
            self.kick()
        return opened

    # --- arrays ------------------------------------------------------------------------

    def array(self, array_id: str) -> dict:
        counts = self.store.array_counts(array_id)
        if not counts:
            raise NotFound("no such array", array_id)
        ordered = {s: counts[s] for s in SUMMARY_ORDER if counts.get(s)}
        return {
            "array_id": array_id,
            "size": sum(counts.values()),
            "counts": ordered,
            "summary": ", ".join(f"{n} {state}" for state, n in ordered.items()),
            "done": all(s in TaskState.final() for s in counts),
        }

    def array_waits_on(self, array_id: str, before: str | None = None) -> str | None:
        """The task a wait for the array's end waits for: its unfinished task
        of the highest index (tasks are placed in order, so usually the last
        to end); None once none is. `before`: the task it waited for last,
        whose index bounds the search (every task above it had ended, and a
        task that ended stays so), so that a wait is not a scan of the
        tasks that ended each time, whatever order they end in."""
        at_most = self.store.array_index(before) if before else None
        return self.store.array_last_open(array_id, at_most)

    def unfinished(self, task_id: str) -> bool:
        return self.store.unfinished(task_id)

    def cancel_array(self, array_id: str) -> dict:
        """Cancel every task of the array that has not ended; stop their runs."""
        if self.store.array_of(array_id) is None:
            raise NotFound("no such array", array_id)
        cancelled = self.store.cancel({"array_id": array_id}, "cancelled by user", self.clock())
        for a in self.store.live_assignments_of([d["_id"] for d in cancelled]):
            if a["state"] in AssignmentState.on_helper():
                self.stop(a["task_id"], a)
        for doc in cancelled:
            self.publish(TASK_CANCELLED, doc)
        self._cancel_after({d["_id"]: f"dependency {d['_id']} cancelled" for d in cancelled})
        return {**self.array(array_id), "cancelled": len(cancelled)}


def source_of(task: dict) -> dict:
    """Where a succeeded task's output is: the run its result names."""
    result = task.get("result") or {}
    return {
        "task_id": task["_id"],
        "helper_id": result.get("helper_id"),
        "attempt": result.get("attempt"),
    }


def array_answer(docs: list[dict]) -> dict:
    return {
        "array_id": docs[0]["array_id"],
        "size": len(docs),
        "tasks": [
            {"task_id": d["_id"], "array_index": d["array_index"], "state": d["state"]}
            for d in docs
        ],
    }


def one_task(docs: list[dict]) -> dict:
    return task_json(docs[0], [])
