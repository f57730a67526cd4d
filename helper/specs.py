"""What a run is made of: its container's spec (name, limits, labels, the
environment that tells it which run it is) and its result as the channel
stores it. A part of Executor (helper/executor.py)."""

from __future__ import annotations

from channel.models import output_digest
from helper.devices import as_label, devices_of
from helper.models import Assignment
from helper.runs import DEVICES_LABEL, HELPER_LABEL, LABEL, RECEIPT_LABEL, RunOutcome, RunSpec


class RunSpecs:
    """Builds what Executor hands the runtime and the outbox."""

    def container_name(self, a: Assignment) -> str:
        return f"seeker-{a.task_id}-{a.attempt}-{self.helper_id[:8]}"

    def _spec(self, a: Assignment, input_mounts: list[dict] | None = None) -> RunSpec:
        return RunSpec(
            name=self.container_name(a),
            image=a.image,
            command=a.command,
            env={**a.env, **self._identity_env(a)},
            cpus=a.resources.cpus,
            memory=a.resources.memory,
            gpu_indices=a.gpu_indices,
            gpu_uuids=a.gpu_uuids,
            declared_gpus=self.declared_gpus,
            timeout=a.timeout,
            labels={
                LABEL: a.key,
                HELPER_LABEL: self.helper_id,
                RECEIPT_LABEL: a.receipt,
                **({DEVICES_LABEL: as_label(devices)} if (devices := devices_of(a)) else {}),
            },
            network_mode=self.network_mode,
            pull=a.pull,
            capabilities=list(a.capabilities),
            mounts=[m.model_dump() for m in a.mounts] + (input_mounts or []),
            spill_dir=self.spill_root / a.key if self.spill_root else None,
        )

    def _identity_env(self, a: Assignment) -> dict[str, str]:
        """What the container learns about the run it is part of."""
        env = {
            "SEEKER_TASK_ID": a.task_id,
            "SEEKER_ATTEMPT": str(a.attempt),
            "SEEKER_HELPER_ID": self.helper_id,
            "SEEKER_HELPER_NAME": self.helper_name,
        }
        if a.gpu_indices:
            env["SEEKER_GPU_INDICES"] = ",".join(str(i) for i in a.gpu_indices)
        if a.gpu_uuids:
            env["SEEKER_GPU_UUIDS"] = ",".join(a.gpu_uuids)
        if a.array_id is not None and a.array_index is not None:
            env["SEEKER_ARRAY_ID"] = a.array_id
            env["SEEKER_ARRAY_INDEX"] = str(a.array_index)
        return env

    def _result(self, task_id: str, attempt: int, image: str, o: RunOutcome) -> dict:
        return {
            "task_id": task_id,
            "helper_id": self.helper_id,
            "helper_name": self.helper_name,
            "attempt": attempt,
            "image": image,
            "status": o.status,
            "exit_code": o.exit_code,
            "error": o.error,
            "stdout": o.stdout.decode("utf-8", errors="replace"),
            "stderr": o.stderr.decode("utf-8", errors="replace"),
            "stdout_truncated": o.stdout_truncated,
            "stderr_truncated": o.stderr_truncated,
            "output_digest": o.stdout_digest or output_digest(o.stdout),
            "started_at": o.started_at.isoformat() if o.started_at else None,
            "finished_at": (o.finished_at or self.clock()).isoformat(),
            "sent_at": None,  # stamped by the outbox handler at each send
            "artifact_count": len(o.artifacts),  # queued before it (_deliver)
        }
