"""Bugs in the services that fuzzing (or probing by hand around what it
found) turned up.

Each bug has
- a request that reproduces it and the answer a fixed service gives:
  test_known_bugs.py sends it, as a regression test once the bug is fixed
  (FIXED_BUGS), or as a strict xfail while it is open (OPEN_BUGS);
- a predicate that recognises its failures in a fuzz run: while a bug is
  open, the fuzz run drops exactly those (the rest of the operation stays
  checked).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from schemathesis.core.failures import AcceptedNegativeData

from serving.schema import INT64_MAX

# (method, path) -> the model of its JSON body, as each app under fuzzing
# declares it (serving.operations.operation); filled by tests/fuzz/conftest.py
BODY_MODELS: dict[tuple[str, str], type[BaseModel]] = {}


@dataclass(frozen=True)
class KnownBug:
    name: str
    service: str  # seeker, channel or helper
    method: str
    path: str
    body: Any  # the JSON body that reproduces it (a str: sent as is)
    expected: int  # what a fixed service answers
    where: str  # file:line of the fault
    fix: str
    matches: Callable[[Any, Any, Any], bool] = field(repr=False)


def server_error(case, response, detail: str, label: str | None = None) -> bool:
    """`response` is the 500 the error handler gives for `detail` (the
    exception's class name), on the operation `label`."""
    if label is not None and case.operation.label != label:
        return False
    if response.status_code != 500:
        return False
    try:
        return json.loads(response.content).get("detail") == detail
    except (ValueError, AttributeError):
        return False


def keys(value: Any):
    """Every object key in a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from keys(v)


def leaves(value: Any):
    """Every value in a JSON value that is not an object or an array."""
    if isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from leaves(v)
    else:
        yield value


def lax_coercion(failure, case, response) -> bool:
    """The server accepted a body that strict validation of the same model
    refuses: the only difference is pydantic's lax coercion."""
    if not isinstance(failure, AcceptedNegativeData):
        return False
    model = BODY_MODELS.get((case.operation.method.upper(), case.operation.path))
    if model is None or not isinstance(case.body, dict):
        return False
    try:
        model.model_validate_json(json.dumps(case.body), strict=True)
    except ValidationError:
        return True
    return False


def nul_in_key(failure, case, response) -> bool:
    nul = any("\x00" in k for k in keys(case.body))
    return nul and server_error(case, response, "InvalidDocument")


def int64_overflow(failure, case, response) -> bool:
    too_big = any(
        isinstance(v, int) and not isinstance(v, bool) and abs(v) > INT64_MAX
        for v in leaves(case.body)
    )
    return too_big and server_error(case, response, "OverflowError")


def huge_size(failure, case, response) -> bool:
    """A size string with more digits than a float holds (float() gives inf)."""
    resources = case.body.get("resources") if isinstance(case.body, dict) else None
    sizes = [resources.get(k) for k in ("memory", "gpu_memory") if isinstance(resources, dict)]
    huge = any(isinstance(s, str) and float("inf") == _float(s) for s in sizes)
    return huge and server_error(case, response, "OverflowError", "POST /api/v1/tasks")


def _float(text: str) -> float | None:
    digits = "".join(c for c in text if c.isdigit() or c == ".")
    try:
        return float(digits)
    except ValueError:
        return None


def nul_in_mount(failure, case, response) -> bool:
    mounts = case.body.get("mounts") if isinstance(case.body, dict) else None
    nul = any(isinstance(m, dict) and "\x00" in str(m.get("source", "")) for m in (mounts or []))
    return nul and server_error(case, response, "ValueError", "POST /api/v1/assignments")


# all seven found on 2026-11-22 were fixed the same day
FIXED_BUGS = [
    KnownBug(
        "lax_type_coercion",
        "seeker",
        "POST",
        "/api/v1/tasks",
        {"image": "busybox:1.36", "resources": {"cpus": True, "gpus": "2"}, "replicas": 1.0},
        422,
        "seeker/api/app.py:34 TaskSpec.model_validate (lax mode); the same in every view "
        "that validates a body: seeker/api/app.py:75,80, channel/app.py:54, helper/app.py:32",
        "validate request bodies strictly: Model.model_validate_json(request.get_data(), "
        "strict=True) in the views, or strict=True on the models' int/float/bool fields",
        lax_coercion,
    ),
    KnownBug(
        "nul_in_object_key",
        "seeker",
        "POST",
        "/api/v1/tasks",
        {"image": "busybox:1.36", "constraints": {"zone\x00": "a"}},
        422,
        "seeker/store/tasks.py:123 TaskStore.create (insert_one), and seeker/store/tasks.py:38 "
        "HelperStore.register for a helper's `labels`: bson InvalidDocument",
        "refuse keys with NUL (and, for MongoDB, '$' prefixes) in `constraints` and "
        "`labels`: a key pattern like ENV_NAME_RE in seeker/models.py",
        nul_in_key,
    ),
    KnownBug(
        "exit_code_beyond_int64",
        "channel",
        "POST",
        "/api/v1/results",
        {
            "task_id": "t1",
            "helper_id": "h1",
            "attempt": 1,
            "image": "busybox:1.36",
            "status": "failed",
            "exit_code": 2**64,
            "output_digest": "sha256:" + "0" * 64,
            "finished_at": "2024-05-01T12:00:00+00:00",
            "sent_at": "2024-05-01T12:00:01+00:00",
        },
        422,
        "channel/store.py:54 ResultStore.add (insert_one): OverflowError, MongoDB can "
        "only handle up to 8-byte ints",
        "channel/models.py:33: `exit_code: Int64 | None = None` (serving.schema.Int64)",
        int64_overflow,
    ),
    KnownBug(
        "size_beyond_float",
        "seeker",
        "POST",
        "/api/v1/tasks",
        {"image": "busybox:1.36", "resources": {"memory": "9" * 400}},
        422,
        "seeker/models.py:64 parse_bytes: int(float('9' * 400)) is int(inf): OverflowError, "
        "which pydantic does not turn into a validation error",
        "in parse_bytes, raise ValueError when the float is not finite (math.isfinite)",
        huge_size,
    ),
    KnownBug(
        "nul_in_mount_source",
        "helper",
        "POST",
        "/api/v1/assignments",
        {
            "task_id": "t1",
            "attempt": 1,
            "helper_id": "fuzzhelper0123456789",
            "image": "busybox:1.36",
            "mounts": [{"source": "/data/\x00", "target": "/x"}],
            "receipt": "rcpt1." + "0" * 64,  # well-formed: the mount is what is wrong
        },
        422,
        "helper/policy.py:36 mount_allowed (from helper/executor.py:71): os.path.realpath "
        "raises ValueError (embedded null byte)",
        "seeker/models.py:104 Mount: patterns that refuse control characters, e.g. "
        "r'^/[^\\x00]*$' for source and target",
        nul_in_mount,
    ),
    KnownBug(
        "float_beyond_range_answered_as_infinity",
        "seeker",
        "POST",
        "/api/v1/helpers",
        '{"helper_id": "h9", "name": "h9", "url": "http://10.0.0.9:7072", '
        '"resources": {"cpus": 1e400}}',
        422,
        "seeker/models.py:187 HelperResources.cpus (and cpu_load, GpuInfo.utilization, "
        "helper/models.py:30 Assignment.timeout): json reads 1e400 as inf, pydantic "
        "accepts it, and the answer (and every later GET /api/v1/helpers) holds "
        "`Infinity`, which is not JSON",
        "allow_inf_nan=False on those fields (or in the models' config), and bounds",
        lambda failure, case, response: False,  # JSON from the fuzzer has no 1e400
    ),
    KnownBug(
        "integer_query_parameter_with_underscores_or_other_digits",
        "seeker",
        "GET",
        "/api/v1/tasks?limit=1_0",
        None,
        400,
        "serving/inputs.py int_arg: int() also reads '1_0' (10) and non-ASCII digits ('١٢')",
        "accept only re.fullmatch(r'-?[0-9]+', raw) before int()",
        lambda failure, case, response: False,
    ),
]


OPEN_BUGS: list[KnownBug] = []


def is_known(failure, case, response) -> bool:
    """A failure of a bug still open (dropped from the fuzz run)."""
    return any(bug.matches(failure, case, response) for bug in OPEN_BUGS)
