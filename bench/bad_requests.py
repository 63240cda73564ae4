"""Soak ``geoseek serve`` with mixed hostile requests (same as ``geoseek bench bad-requests``).

    python bench/bad_requests.py -n 2000 --json

Serves small random-vector collections on 127.0.0.1 with a token, sends N mixed bad requests and
reports responses >= 500 (must be 0), tracebacks in the server log (0), server RSS after warm-up
vs at the end, and the bytes an unauthenticated 200 MiB chunked body got to send before refusal
(see geoseek/service/faultprobe.py).
"""

from __future__ import annotations

import sys

from geoseek.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "bad-requests", *sys.argv[1:]]))
