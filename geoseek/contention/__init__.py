"""``geoseek bench contention``: throughput of geoseek's workloads when the cores are shared.

:mod:`~geoseek.contention.workloads` defines the workloads (each a setup returning a timed run);
:mod:`~geoseek.contention.child` runs one in its own process; :mod:`~geoseek.contention.runner`
starts those processes quiet, in pairs and beside CPU-bound competitors, and reports ratios.
"""
