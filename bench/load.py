"""HTTP load benchmark of ``geoseek serve`` on loopback (same as ``geoseek bench load``).

    python bench/load.py --n 100000 --dim 128 --clients 16 --seconds 15 --json

Builds a random-vector collection, serves it on 127.0.0.1 in a subprocess and reports p50/p99
latency, req/s and errors per query mode (see geoseek/service/loadbench.py).
"""

from __future__ import annotations

import sys

from geoseek.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "load", *sys.argv[1:]]))
