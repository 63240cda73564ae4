"""``geoseek collection shard``: split a collection by space into quadkey shards."""

from __future__ import annotations

import argparse
from pathlib import Path

from geoseek.cli._util import add_json_flag, int_in, subparsers


def register(verbs: dict[str, argparse.ArgumentParser]) -> None:
    p = subparsers(verbs["collection"]).add_parser(
        "shard", help="split a collection by space (quadkey of the items' centroids) into shards",
        description="Write a sharded copy of a collection: one sub-collection per quadkey prefix at --level, so "
                    "that bbox and radius searches open only the shards they overlap (geoseek.collection.sharded).")
    p.add_argument("collection", help="collection directory (or name under $GEOSEEK_COLLECTIONS)")
    p.add_argument("--out", required=True, type=Path, help="sharded collection directory to write")
    p.add_argument("--by", choices=("quadkey",), default="quadkey")
    p.add_argument("--level", type=int_in(1, 23), default=10,
                   help="quadkey level (zoom) of the shards (10 ≈ 39 km tiles at the equator; default 10)")
    p.add_argument("--overwrite", action="store_true")
    add_json_flag(p)
    p.set_defaults(func=run_shard)


def run_shard(args: argparse.Namespace) -> int:
    from geoseek.cli import emit_json
    from geoseek.collection import collection_path
    from geoseek.collection.sharded import shard_collection

    result = shard_collection(collection_path(args.collection), args.out, level=args.level, by=args.by,
                              overwrite=args.overwrite)
    if args.json:
        emit_json(result)
    else:
        print(f"sharded {args.collection} -> {result['out']}: {result['count']} items in {result['shards']} shards")
    return 0
