"""The batch scheduler or cluster a run ran under, from the variables it sets: for the record and for grouping runs.

* SLURM: job, step and array ids, job name, cluster and node (``SLURM_*`` variables; ``srun`` sets the step).
* Kubernetes: pod, namespace and node, from variables a pod spec sets through the downward API
  (``POD_NAME``/``MY_POD_NAME``, ``POD_NAMESPACE``/``MY_POD_NAMESPACE``, ``NODE_NAME``/``MY_NODE_NAME``; see the
  README); inside a cluster without them, the pod name Kubernetes gives the host name.
* Ray: the job id (``RAY_JOB_ID``, set in Ray's workers) and, where this process has joined a Ray cluster,
  its session name (job ids restart at ``01000000`` on every new cluster).
* ``CO2CB_JOB_ID``: a job id of the user's (any launcher), which :func:`job_key` prefers.

Nothing is imported: Ray is asked only when the process has already imported and initialised it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

JOB_ID_VARIABLE = "CO2CB_JOB_ID"

SLURM = {
    "job_id": "SLURM_JOB_ID",
    "step_id": "SLURM_STEP_ID",
    "array_job_id": "SLURM_ARRAY_JOB_ID",
    "array_task_id": "SLURM_ARRAY_TASK_ID",
    "job_name": "SLURM_JOB_NAME",
    "cluster": "SLURM_CLUSTER_NAME",
    "nodes": "SLURM_JOB_NUM_NODES",
    "node": "SLURMD_NODENAME",
}
KUBERNETES = {
    "pod": ("POD_NAME", "MY_POD_NAME", "K8S_POD_NAME"),
    "namespace": ("POD_NAMESPACE", "MY_POD_NAMESPACE", "K8S_POD_NAMESPACE"),
    "node": ("NODE_NAME", "MY_NODE_NAME", "K8S_NODE_NAME"),
}


def _first(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((environ[n] for n in names if environ.get(n)), None)


def _ray_session() -> str | None:
    ray = sys.modules.get("ray")
    try:
        if ray is not None and ray.is_initialized():
            return str(ray.get_runtime_context().get_session_name())
    except Exception:  # noqa: BLE001 - a Ray that cannot say is no reason to fail a run
        return None
    return None


def scheduler_context(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What the scheduler says about this run: ``{"slurm": {...}, "kubernetes": {...}, "ray": {...}}`` where set.

    Args:
        environ: The variables to read (default: this process's).
    """
    environ = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    if environ.get(JOB_ID_VARIABLE):
        found["job_id"] = environ[JOB_ID_VARIABLE]
    slurm = {key: environ[name] for key, name in SLURM.items() if environ.get(name)}
    if "job_id" in slurm:
        found["slurm"] = slurm
    kubernetes = {key: v for key, names in KUBERNETES.items() if (v := _first(environ, names))}
    if environ.get("KUBERNETES_SERVICE_HOST") and "pod" not in kubernetes and environ.get("HOSTNAME"):
        kubernetes["pod"] = environ["HOSTNAME"]  # a pod's host name is its name unless the spec sets another
    if kubernetes:
        found["kubernetes"] = kubernetes
    ray: dict[str, str] = {}
    if environ.get("RAY_JOB_ID"):
        ray["job_id"] = environ["RAY_JOB_ID"]
    session = _ray_session() if environ is os.environ else None
    if session:
        ray["session"] = session
    if ray:
        found["ray"] = ray
    return found


def job_key(scheduler: Mapping[str, Any] | None) -> str | None:
    """The job a run belongs to, from a record's ``scheduler`` field; None when no scheduler names one.

    ``CO2CB_JOB_ID`` first, then the SLURM job (``slurm:1234``, an array task ``slurm:1234_7``), then the Ray
    job in its session (``ray:session_.../01000000``). Kubernetes names pods, not jobs: set ``CO2CB_JOB_ID``
    (e.g. from the ``job-name`` label through the downward API) to group a Kubernetes job's runs.
    """
    if not isinstance(scheduler, Mapping):
        return None
    if scheduler.get("job_id"):
        return str(scheduler["job_id"])
    slurm = scheduler.get("slurm")
    if isinstance(slurm, Mapping) and slurm.get("job_id"):
        if slurm.get("array_job_id") and slurm.get("array_task_id") is not None:
            return f"slurm:{slurm['array_job_id']}_{slurm['array_task_id']}"
        return f"slurm:{slurm['job_id']}"
    ray = scheduler.get("ray")
    if isinstance(ray, Mapping) and ray.get("job_id"):
        return f"ray:{ray['session']}/{ray['job_id']}" if ray.get("session") else f"ray:{ray['job_id']}"
    return None
