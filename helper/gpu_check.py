"""`helper gpus`: what Seeker makes of this host's GPUs, checked before the
helper is started on it.

1. NVML, read as the helper reads it at registration (gpus.py), and how
   long the read took.
2. The report checked against the seeker's own model of a registration
   (`HelperResources`): what the seeker would refuse shows here, not as a
   422 at `helper start`.
3. Each device (a GPU, or a MIG instance of a GPU with MIG on) matched by
   the seeker's placement: a task asking for one device of exactly that
   model, compute capability and CUDA version is placed on it.
4. With `--run IMAGE`: per device, a container started as the helper starts
   one for a task given that device (helper/runtime.py: a Docker
   `DeviceRequest` by uuid, capabilities dropped), running `nvidia-smi -L`;
   the check passes when the container lists that device and no other.
   This is the GPU container path: the driver, the NVIDIA container toolkit
   and Docker together."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import click
from pydantic import ValidationError

from helper.gpus import gpu_inventory

UUID = re.compile(r"\b(?:GPU|MIG)-[0-9A-Za-z-]+")


@dataclass
class DeviceCheck:
    """One device: its uuid, what it is, and what each step found."""

    uuid: str
    index: int
    what: str  # "NVIDIA H200" or "NVIDIA A100-SXM4-80GB MIG 3g.40gb"
    placed: str = ""  # "" when the seeker placed the task on it, else the reason
    container: str = ""  # with --run: "" when the container saw this device alone
    seen: list[str] = field(default_factory=list)  # uuids the container listed


@dataclass
class GpuCheck:
    gpus: list[dict]
    read_ms: float
    refused: str = ""  # the seeker's model's complaint, if any
    devices: list[DeviceCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.devices) and not self.refused and not self.failures()

    def failures(self) -> list[str]:
        return [f"{d.uuid}: {why}" for d in self.devices for why in (d.placed, d.container) if why]


def check_gpus(nvml: Any = None, runtime=None, image: str = "") -> GpuCheck:
    """Steps 1-3, and step 4 when a runtime and an image are given."""
    from seeker.helper_models import HelperResources
    from seeker.placement.gpus import devices_of

    started = time.perf_counter()
    gpus = gpu_inventory(nvml)
    check = GpuCheck(gpus, (time.perf_counter() - started) * 1000)
    try:
        HelperResources(cpus=1, gpus=gpus)
    except ValidationError as exc:
        check.refused = str(exc)
        return check
    for device in devices_of(gpus):
        what = f"{device.name} MIG {device.profile}" if device.profile else device.name
        d = DeviceCheck(device.uuid, device.index, what, placed=placement_refuses(gpus, device))
        if runtime is not None and image:
            parent = gpus[device.index]["uuid"] if device.profile else ""
            d.container, d.seen = run_on(runtime, image, device, parent)
        check.devices.append(d)
    return check


def placement_refuses(gpus: list[dict], device) -> str:
    """Why the seeker would not place, on a helper reporting `gpus`, a task
    asking for one device of this one's model and versions ("" if it does,
    on this device)."""
    from seeker.placement import select
    from seeker.placement.capacity import view_of
    from seeker.placement.gpus import eligible
    from seeker.placement.views import TaskView

    now = datetime.now(timezone.utc)
    doc = {"helper_id": "check", "name": "this host", "last_seen": now}
    doc["resources"] = {"cpus": 1, "memory_total": 1 << 30, "gpus": gpus}
    helper = view_of(doc, [], now, timedelta(seconds=60))
    task = TaskView(
        "gpu-check",
        gpus=1,
        gpu_model=device.profile or device.name,
        min_cuda=device.cuda_version,
        min_compute_capability=device.compute_capability,
    )
    selection = select(task, [helper])
    if not selection.candidates:
        return selection.wait_reason()
    if device.key not in {d.key for d in eligible(task, helper.devices)}:
        return "placed, but this device is not among those that match it"
    return ""


def run_on(runtime, image: str, device, parent: str = "") -> tuple[str, list[str]]:
    """Run `nvidia-smi -L` as a task given `device`: ("", uuids listed) when
    the container saw this device and no other, else what went wrong.
    `parent`: a MIG device's GPU, which nvidia-smi lists it under."""
    from helper.runs import RunSpec

    spec = RunSpec(
        name=f"seeker-gpu-check-{device.uuid or device.index}",
        image=image,
        command=["nvidia-smi", "-L"],
        env={},
        gpu_indices=[device.index],
        gpu_uuids=[device.uuid] if device.uuid else [],
        timeout=120,
        pull="never",
    )
    outcome = runtime.run(spec)
    out = outcome.stdout.decode(errors="replace")
    seen = UUID.findall(out)
    if outcome.error or outcome.exit_code != 0:
        err = outcome.error or outcome.stderr.decode(errors="replace").strip()
        return f"the container failed (exit {outcome.exit_code}): {err}", seen
    if device.uuid not in seen:
        return f"the container did not see this device; it listed {seen or 'none'}", seen
    # a MIG instance is listed under its GPU: that GPU's uuid is not another device
    others = [u for u in seen if u not in (device.uuid, parent)]
    if others:
        return f"the container saw other devices too: {others}", seen
    return "", seen


def describe(check: GpuCheck) -> str:
    gib = 1024**3
    lines = [f"NVML: {len(check.gpus)} GPU(s), read in {check.read_ms:.1f} ms"]
    for g in check.gpus:
        lines.append(
            f"  #{g['index']} {g['name']} {g['uuid']}  "
            f"{g['memory_free'] / gib:.1f}/{g['memory_total'] / gib:.1f} GiB free, "
            f"compute capability {g.get('compute_capability')}, "
            f"driver's CUDA {g.get('cuda_version')}, utilisation {g.get('utilization')}"
            + (f", MIG: {len(g['mig'])} instance(s)" if g.get("mig") else "")
        )
    if check.refused:
        lines.append(f"the seeker would refuse this report: {check.refused}")
    for d in check.devices:
        lines.append(f"device {d.uuid} ({d.what}):")
        lines.append(f"  placement: {d.placed or 'a task asking for exactly it is placed on it'}")
        if d.container or d.seen:
            lines.append(f"  container: {d.container or 'saw this device and no other'}")
    lines.append("ok" if check.ok else "NOT OK")
    return "\n".join(lines)


@click.command()
@click.option(
    "--run",
    "image",
    metavar="IMAGE",
    help="Also run `nvidia-smi -L` in IMAGE (already on this host: nothing is pulled) on "
    "each device, as the helper runs a task given it, and check that it sees that device alone.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the check as JSON.")
def gpus(image, as_json):
    """Check this host's GPUs as Seeker sees them: NVML, the seeker's model,
    placement, and with --run the GPU container path. Exits 1 when no GPU
    is found or a step fails."""
    runtime = None
    if image:
        from docker.errors import DockerException

        from helper.runtime import DockerRuntime

        try:
            runtime = DockerRuntime()
        except DockerException as exc:
            why = f"--run needs Docker, which cannot be reached: {exc}"
            raise click.ClickException(why) from None
    check = check_gpus(runtime=runtime, image=image or "")
    if as_json:
        click.echo(json.dumps({"ok": check.ok, **asdict(check)}, indent=1, default=str))
    else:
        click.echo(describe(check))
    if not check.gpus:
        click.echo("no GPUs found: is the NVIDIA driver loaded (nvidia-smi)?", err=True)
    raise SystemExit(0 if check.ok else 1)


if __name__ == "__main__":
    gpus()
