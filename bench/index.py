"""Benchmark of the vector index: ``python bench/index.py --n 200000 --json``.

Same as ``geoseek bench index`` (see geoseek/collection/benchmark.py for what is measured).
"""

import sys

from geoseek.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "index", *sys.argv[1:]]))
