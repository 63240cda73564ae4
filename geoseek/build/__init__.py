"""Partitioned builds: one engine for every ``geoseek build`` (see :mod:`geoseek.build.engine`).

* :mod:`~geoseek.build.engine`: :class:`BuildPlan`, :func:`run_build` (work folder, fingerprint,
  resume, merge in partition order through the collection builder).
* :mod:`~geoseek.build.executors`: in-process, local process pool, Ray.
* :mod:`~geoseek.build.shardfile`: a partition's output on disk (:class:`Shard`).

It lives outside :mod:`geoseek.collection` because it is about running work (processes, Ray,
resumable partitions), not about storing a collection: it uses the collection only through
:meth:`Collection.create`'s builder. Nothing here runs at import.
"""

from __future__ import annotations

from geoseek.build.engine import BuildPlan, file_stamp, run_build, work_dir
from geoseek.build.shardfile import Shard

__all__ = ["BuildPlan", "Shard", "file_stamp", "run_build", "work_dir"]
