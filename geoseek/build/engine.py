"""The partitioned build: partitions → shard files in a work folder → one atomic collection commit.

A :class:`BuildPlan` lists a build's partitions (picklable specs: tile blocks, scene blocks,
image batches) and names one top-level partition function ``fn(context, spec) -> Shard``.
:func:`run_build`:

1. takes the output's writer lock (held to the end; the collection builder re-enters it);
2. prepares the work folder ``<out>.partial/``: its ``build.json`` records a fingerprint of the
   plan (inputs, arguments, partition specs). ``resume=True`` keeps the finished shards of a
   work folder with the same fingerprint and refuses one with another; without it a leftover
   work folder is cleared;
3. runs the unfinished partitions on an executor (:mod:`geoseek.build.executors`), writing each
   shard atomically (``part-<id>.npz``) as it arrives;
4. merges the shards IN PARTITION ORDER through :meth:`Collection.create` (one atomic commit),
   then deletes the work folder.

So the collection is the same whatever the executor or the number of workers: same items in the
same order, vectors equal up to float rounding of different torch thread counts.
Test hook: ``GEOSEEK_TEST_KILL_AFTER_PARTITIONS=N`` kills this process (SIGKILL) once N shards
have been written in this run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geoseek.build import executors
from geoseek.build.shardfile import Shard, load_shard, save_shard
from geoseek.errors import ConflictError, InvalidInputError

ENGINE_VERSION = 1
WORK_SUFFIX = ".partial"
KILL_HOOK = "GEOSEEK_TEST_KILL_AFTER_PARTITIONS"


@dataclass
class BuildPlan:
    """A build as partitions.

    Attributes:
        kind: the build's name ("osm", "sketchmap", ...), for messages and the fingerprint.
        out: the collection directory to write.
        fn: top-level (picklable) partition function ``fn(context, spec) -> Shard``.
        context: picklable inputs shared by every partition (sent once per worker).
        partitions: picklable, JSON-describable specs, in merge order (id = position).
        fingerprint: JSON-able description of inputs and arguments (file sizes/mtimes, model
            checksum, options): two builds with the same fingerprint compute the same shards.
        collection: keyword arguments of :meth:`Collection.create` (``dim`` may be omitted:
            taken from the first shard).
        files: collection files to store, name → source path.
        finish: optional ``finish(builder, arrays)`` run before the commit; ``arrays`` are the
            shards' per-item arrays concatenated in partition order (default: each stored with
            ``put_array``).
    """

    kind: str
    out: Path
    fn: executors.PartitionFn
    context: Any
    partitions: list[Any]
    fingerprint: dict[str, Any]
    collection: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    finish: Any = None


def file_stamp(path: str | os.PathLike) -> dict[str, Any]:
    """What the fingerprint records of an input file: resolved path, size (bytes), mtime (ns)."""
    p = Path(path).resolve()
    st = p.stat()
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def plan_fingerprint(plan: BuildPlan) -> str:
    """sha256 of the plan's fingerprint, partition specs and engine version."""
    blob = json.dumps({"engine": ENGINE_VERSION, "kind": plan.kind, "fingerprint": plan.fingerprint,
                       "partitions": plan.partitions}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def work_dir(out: str | os.PathLike) -> Path:
    """The work folder of a build of ``out``: ``<out>.partial`` beside it."""
    out = Path(out).absolute()
    return out.with_name(out.name + WORK_SUFFIX)


def _shard_path(work: Path, pid: int) -> Path:
    return work / f"part-{pid:06d}.npz"


def _prepare_work(plan: BuildPlan, work: Path, resume: bool) -> list[int]:
    """Set up the work folder; returns the ids of the partitions already done (valid shards)."""
    fp = plan_fingerprint(plan)
    meta = work / "build.json"
    if work.exists() and resume:
        try:
            recorded = json.loads(meta.read_text()).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if recorded is not None and recorded != fp:
            raise ConflictError(f"{work} holds the shards of a different build of {plan.out.name} (other inputs "
                                "or options); rerun with the same ones, or without --resume to start over")
        if recorded == fp:
            done = []
            for pid in range(len(plan.partitions)):
                p = _shard_path(work, pid)
                if p.is_file():
                    try:
                        load_shard(p)
                        done.append(pid)
                    except (OSError, ValueError, KeyError):
                        p.unlink(missing_ok=True)  # damaged: redo it
            return done
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    tmp = meta.with_name(".build.json.tmp")
    tmp.write_text(json.dumps({"fingerprint": fp, "kind": plan.kind, "partitions": len(plan.partitions),
                               "created": time.time()}))
    os.replace(tmp, meta)
    return []


def _executor(plan: BuildPlan, todo: list[tuple[int, Any]], workers: int, ray: str | bool | None):
    if ray is not None and ray is not False:
        return "ray", executors.run_ray(plan.fn, plan.context, todo, None if ray is True else str(ray), workers)
    if workers <= 1 or len(todo) <= 1:
        return "inprocess", executors.run_inprocess(plan.fn, plan.context, todo)
    return "processes", executors.run_pool(plan.fn, plan.context, todo, min(workers, len(todo)))


def run_build(plan: BuildPlan, *, workers: int | None = None, ray: str | bool | None = None,
              resume: bool = False, overwrite: bool = False, progress: bool = True,
              wait: bool | None = None) -> dict[str, Any]:
    """Run ``plan``; returns a JSON-ready report.

    Args:
        workers: local processes (default: the cores available); with ``ray``, the CPUs of the
            local Ray cluster. 1 runs in this process.
        ray: None/False: no Ray; True: a local Ray cluster; a string: the address of one.
        resume: keep the finished shards of an interrupted build with the same fingerprint.

    Report keys: ``collection, items, partitions, partitions_computed`` (ids computed in this
    run), ``partitions_reused, workers, engine, seconds, partition_seconds`` (summed over
    workers), ``merge_seconds, items_per_s``, plus the shards' ``stats`` summed (this run's only).
    """
    from tqdm.auto import tqdm

    from geoseek.collection import Collection, locking
    from geoseek.collection.core import OutputExistsError

    t0 = time.perf_counter()
    out = Path(plan.out).absolute()
    workers = executors.available_cores() if workers is None else int(workers)
    if workers < 1:
        raise InvalidInputError(f"--workers must be ≥ 1, got {workers}")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists (pass overwrite=True / --overwrite to replace it)")
    if ray is not None and ray is not False:
        executors._ray_module()  # a clear error before any work when ray is missing
    work = work_dir(out)
    kill_after = int(os.environ.get(KILL_HOOK, "0") or 0)
    with locking.writer_lock(out, wait=wait):
        done = set(_prepare_work(plan, work, resume))
        todo = [(pid, spec) for pid, spec in enumerate(plan.partitions) if pid not in done]
        engine, results = _executor(plan, todo, workers, ray)
        computed: list[int] = []
        part_s = 0.0
        stats: dict[str, float] = {}
        bar = tqdm(total=len(plan.partitions), initial=len(done), desc=f"build {plan.kind}", unit="part",
                   disable=not progress)
        try:
            for pid, shard, secs in results:
                save_shard(_shard_path(work, pid), shard)
                computed.append(pid)
                part_s += secs
                for k, v in shard.stats.items():
                    stats[k] = stats.get(k, 0.0) + float(v)
                bar.update(1)
                if kill_after and len(computed) >= kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
        finally:
            bar.close()
            close = getattr(results, "close", None)
            if close is not None:
                close()
        t_merge = time.perf_counter()
        n_items = _merge(plan, work, overwrite, wait, Collection)
        merge_s = time.perf_counter() - t_merge
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - t0
    return {"collection": str(plan.out), "items": n_items, "partitions": len(plan.partitions),
            "partitions_computed": sorted(computed), "partitions_reused": len(done),
            "workers": 1 if engine == "inprocess" else workers, "engine": engine, "seconds": seconds,
            "partition_seconds": part_s, "merge_seconds": merge_s, "items_per_s": n_items / max(seconds, 1e-9), **stats}


def _merge(plan: BuildPlan, work: Path, overwrite: bool, wait: bool | None, Collection: Any) -> int:
    """Add every shard, in partition order, into a new collection; commit once. Returns the item count."""
    kwargs = dict(plan.collection)
    arrays: dict[str, list[np.ndarray]] = {}
    n_items = 0
    shards = (load_shard(_shard_path(work, pid)) for pid in range(len(plan.partitions)))
    first: Shard | None = None
    if "dim" not in kwargs:
        first = next(shards, None)
        if first is None:
            raise InvalidInputError(f"build {plan.kind}: nothing to build (no partitions)")
        kwargs["dim"] = int(first.vectors.shape[1])
    with Collection.create(plan.out, overwrite=overwrite, wait=wait, **kwargs) as builder:
        for shard in _chain(first, shards):
            if shard.items:
                builder.add(shard.items, shard.vectors)
                n_items += len(shard.items)
            for name, arr in shard.arrays.items():
                arrays.setdefault(name, []).append(arr)
        joined = {name: np.concatenate(parts) for name, parts in arrays.items()}
        if plan.finish is not None:
            plan.finish(builder, joined)
        else:
            for name, arr in joined.items():
                builder.put_array(name, arr)
        for name, src in plan.files.items():
            builder.put_file(name, src)
    return n_items


def _chain(first: Shard | None, rest: Any):
    if first is not None:
        yield first
    yield from rest


_PROCESS_MODELS: dict[tuple[str, str], Any] = {}


def process_model(path: str | os.PathLike, checksum: str = "") -> Any:
    """The model of checkpoint ``path``, loaded once per process (partition functions call this)."""
    key = (str(path), checksum)
    model = _PROCESS_MODELS.get(key)
    if model is None:
        from geoseek.checkpoint import load_model

        model = load_model(path)[0]
        model.eval()
        _PROCESS_MODELS.clear()
        _PROCESS_MODELS[key] = model
    return model
