"""``geoseek bench index``: collection search vs raw FAISS, numpy and BallTree (see
:mod:`geoseek.collection.benchmark`)."""

from __future__ import annotations

import argparse

from geoseek.cli import emit_json
from geoseek.cli._util import add_json_flag, subparsers


def register(verbs: dict[str, argparse.ArgumentParser]) -> None:
    sub = subparsers(verbs["bench"])
    p = sub.add_parser(
        "index", help="vector index: ours vs raw FAISS, numpy brute force, scikit-learn BallTree",
        description="Clustered float32 vectors with exact ground truth: recall@10, queries/s, p50/p99 latency, "
        "build time and memory of our collection search (with and without a bbox filter keeping ~10%% of "
        "the items), raw FAISS with the same index, numpy brute force and scikit-learn BallTree.",
    )
    p.add_argument("--n", type=int, default=1_000_000, help="vectors in the collection (default 1,000,000)")
    p.add_argument("--dim", type=int, default=256, help="vector dimension (default 256)")
    p.add_argument("--queries", type=int, default=1000, help="queries with exact ground truth (default 1000)")
    p.add_argument("--batch", type=int, default=100, help="queries per call for throughput (default 100)")
    p.add_argument("--latency-queries", type=int, default=200, help="single-query calls timed for p50/p99")
    p.add_argument("--balltree-queries", type=int, default=20, help="queries BallTree answers (it is slow)")
    p.add_argument("--no-balltree", action="store_true", help="skip BallTree")
    p.add_argument("--workdir", help="where the temporary collection is built (default: system temp)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-budget", default="2G",
                   help="RAM the collection's index may hold, e.g. 2G, 512M or MB (default 2G): above it, "
                   "IVF-PQ with exact re-ranking from the memory-mapped vectors replaces IVF-Flat")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from geoseek.errors import InvalidInputError
    from geoseek.collection import benchmark

    for name in ("n", "dim", "queries", "batch", "latency_queries", "balltree_queries"):
        if getattr(args, name) <= 0:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be > 0")
    if args.n < 1000:
        raise InvalidInputError("--n must be >= 1000")
    res = benchmark.run(
        n=args.n, dim=args.dim, n_queries=args.queries, batch=args.batch,
        latency_queries=min(args.latency_queries, args.queries),
        balltree_queries=min(args.balltree_queries, args.queries), workdir=args.workdir, seed=args.seed,
        skip_balltree=args.no_balltree, memory_budget=args.memory_budget,
    )
    print(benchmark.table(res))
    if args.json:
        emit_json(res)
    return 0
