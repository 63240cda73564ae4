"""``geoseek collection info|add|search|remove|verify|repair``: inspect, edit and check collections.

Writing commands (add, remove, repair) hold the collection's writer lock for their whole run:
a second writer fails with a message naming the holder, or queues with ``--wait``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from geoseek.cli import emit_json
from geoseek.cli._util import subparsers
from geoseek.collection.locking import writer_lock
from geoseek.errors import InvalidInputError, NotFoundError


def register(verbs: dict[str, argparse.ArgumentParser]) -> None:
    sub = subparsers(verbs["collection"])

    p = sub.add_parser("info", help="show a collection's manifest and counts",
                       description="Show a collection's manifest, counts, labels, arrays and files.")
    p.add_argument("collection", help="collection directory")
    p.add_argument("--verify", action="store_true", help="check every file fully before answering (checksums, SQLite)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_info)

    p = sub.add_parser("verify", help="check every file of a collection (checksums, SQLite integrity)",
                       description="Check every file of a collection: recorded checksums, .npy and FAISS headers, "
                       "SQLite integrity_check, index keys vs items, every vector finite. Exit 0 when intact, "
                       "1 when damaged (the damaged file is named).")
    p.add_argument("collection", help="collection directory")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_verify)

    p = sub.add_parser("repair", help="rebuild a collection's index from its intact stored vectors",
                       description="Rebuild the vector index from the vectors stored in it (checksum intact) and the "
                       "items in items.sqlite, atomically. Re-derives damaged keys/points/labels/alive arrays; "
                       "refuses (naming the file) when the vectors or items.sqlite are damaged.")
    p.add_argument("collection", help="collection directory")
    p.add_argument("--wait", action="store_true", help="wait for another writer instead of failing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_repair)

    p = sub.add_parser(
        "add", help="add items and vectors (.npy + JSON/JSONL items)",
        description="Add items with vectors to a collection (durable, incremental). Items: a JSON list or "
        "JSONL file of objects {id, name?, bbox?: [W,S,E,N], centroid?: [LON,LAT], label?, source?, metadata?}, "
        "row-aligned with the (N, D) float32 vectors in --vectors. With --create a new collection is built.",
    )
    p.add_argument("collection", help="collection directory")
    p.add_argument("--vectors", required=True, type=Path, help=".npy file of shape (N, D)")
    p.add_argument("--items", required=True, type=Path, help="JSON list or JSONL file of N items")
    p.add_argument("--create", action="store_true", help="create the collection if it does not exist")
    p.add_argument("--modality", default="vectors", help="modality recorded when creating (default: vectors)")
    p.add_argument("--metric", default="ip", choices=["ip", "l2"], help="metric when creating (default ip)")
    p.add_argument("--backend", default="faiss", help="index backend when creating (faiss | qdrant)")
    p.add_argument("--qdrant-url", help="Qdrant server URL when creating with --backend qdrant "
                   "(default $GEOSEEK_QDRANT_URL; API key from $GEOSEEK_QDRANT_API_KEY)")
    p.add_argument("--qdrant-shards", type=int, help="Qdrant shard_number when creating on a cluster")
    p.add_argument("--qdrant-replicas", type=int, help="Qdrant replication_factor when creating on a cluster")
    p.add_argument("--memory-budget", help="FAISS: RAM the index may hold when creating, e.g. 2G or 512M "
                   "(default $GEOSEEK_INDEX_MEMORY_BUDGET, else a quarter of RAM); above it IVF-PQ is used")
    p.add_argument("--model-id", default="", help="model id recorded when creating")
    p.add_argument("--batch", type=int, default=50_000, help="items per batch (default 50000)")
    p.add_argument("--wait", action="store_true", help="wait for another writer of the collection instead of failing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_add)

    p = sub.add_parser("search", help="search a collection by vector or item (see also `geoseek search`)",
                       description="Search by --vector or --item with optional --bbox/--radius/--label filters.")
    p.add_argument("collection", help="collection directory")
    from geoseek.search import add_common_arguments
    from geoseek.search.vector import MODES

    for mode in MODES:
        mode.add_arguments(p)
    add_common_arguments(p)
    p.set_defaults(func=run_search)

    p = sub.add_parser("remove", help="remove items by id", description="Remove items by id (durable).")
    p.add_argument("collection", help="collection directory")
    p.add_argument("ids", nargs="*", metavar="ID", help="item ids")
    p.add_argument("--ids-file", type=Path, help="file with one id per line")
    p.add_argument("--wait", action="store_true", help="wait for another writer of the collection instead of failing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_remove)


def _open(path: str, verify: bool = False):
    from geoseek.collection import Collection, collection_path

    return Collection.open(collection_path(path), verify=verify)


def run_verify(args: argparse.Namespace) -> int:
    from geoseek.collection import collection_path
    from geoseek.collection.repair import verify

    path = collection_path(args.collection)
    if not path.exists():
        raise NotFoundError(f"no collection at {path}")
    report = verify(path)
    if args.json:
        emit_json({k: v for k, v in report.items() if k != "files_checked"} | {"files_checked": len(report.get("files_checked", []))})
    elif report["ok"]:
        note = "" if report.get("checksums_recorded") else " (no checksums recorded: written by an older geoseek; " \
                                                             "`geoseek collection repair` records them)"
        print(f"{report['collection']}: intact ({report['count']} items, {len(report['files_checked'])} files checked){note}")
    else:
        print(f"{report['collection']}: DAMAGED: {report['file']} {report['problem']}")
    return 0 if report["ok"] else 1


def run_repair(args: argparse.Namespace) -> int:
    from geoseek.collection import collection_path
    from geoseek.collection.repair import repair

    report = repair(collection_path(args.collection), wait=args.wait)
    if args.json:
        emit_json(report)
    else:
        print(f"repaired {report['collection']}: index rebuilt from the stored vectors ({report['count']} items)")
    return 0


def run_info(args: argparse.Namespace) -> int:
    with _open(args.collection, verify=getattr(args, "verify", False)) as col:
        info = col.info()
    if args.json:
        emit_json(info)
        return 0
    for key in ("name", "path", "modality", "count", "dim", "metric", "backend", "index_type",
                "model_id", "model_checksum", "created", "format"):
        if key in info:
            print(f"{key:>15}: {info[key]}")
    labels = info.get("labels") or {}
    if labels:
        shown = ", ".join(f"{k} ({v})" for k, v in list(labels.items())[:20])
        print(f"{'labels':>15}: {shown}{' ...' if len(labels) > 20 else ''}")
    for key in ("arrays", "files"):
        if info.get(key):
            print(f"{key:>15}: {', '.join(info[key])}")
    if info.get("extra"):
        print(f"{'extra':>15}: {json.dumps(info['extra'])[:200]}")
    return 0


def read_items(path: Path) -> list:
    """Items from a JSON list or a JSONL file (InvalidInputError naming the bad line)."""
    from geoseek.collection import Item

    if not path.is_file():
        raise NotFoundError(f"items file {path} does not exist")
    from geoseek.safejson import loads_limited

    data = path.read_bytes()
    if data.lstrip().startswith(b"["):
        objs = loads_limited(data, max_bytes=MAX_ITEMS_FILE_BYTES, what=f"items file {path.name}")
    else:
        objs = []
        for n, line in enumerate(data.splitlines(), 1):
            if line.strip():
                objs.append(loads_limited(line, max_bytes=MAX_ITEMS_FILE_BYTES, what=f"{path.name}:{n}"))
    out = []
    for i, o in enumerate(objs):
        if not isinstance(o, dict):
            raise InvalidInputError(f"items file {path.name}: item {i} is a {type(o).__name__}, not a JSON object")
        out.append(Item.from_json(o))
    return out


MAX_ITEMS_FILE_BYTES = 4 << 30
"""Largest items file ``collection add --items`` reads (4 GiB); nesting is limited by :mod:`geoseek.safejson`."""


def run_add(args: argparse.Namespace) -> int:
    import numpy as np

    from geoseek.collection import collection_path

    if not args.vectors.is_file():
        raise NotFoundError(f"vectors file {args.vectors} does not exist")
    try:
        vectors = np.load(args.vectors, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read {args.vectors} as a .npy array: {exc}") from None
    if vectors.ndim != 2:
        raise InvalidInputError(f"{args.vectors} must hold an (N, D) array, got shape {vectors.shape}")
    items = read_items(args.items)
    if len(items) != len(vectors):
        raise InvalidInputError(f"{len(items)} items in {args.items} but {len(vectors)} vectors in {args.vectors}")
    path = collection_path(args.collection)
    batch = max(1, args.batch)
    with writer_lock(path, wait=args.wait):  # one writer for the whole command: all batches or a refusal
        added = _add_locked(args, path, items, vectors, batch)
    with _open(str(path)) as col:
        count = len(col)
    if args.json:
        emit_json({"collection": str(path), "added": added, "count": count})
    else:
        print(f"added {added} items to {path} ({count} in all)")
    return 0


def _add_locked(args: argparse.Namespace, path: Path, items: list, vectors, batch: int) -> int:
    import numpy as np
    from tqdm import tqdm

    from geoseek.collection import Collection

    if not path.exists():
        if not args.create:
            raise NotFoundError(f"no collection at {path} (pass --create to make one)")
        if args.backend == "qdrant":
            options = {k: v for k, v in (("url", args.qdrant_url), ("shard_number", args.qdrant_shards),
                                         ("replication_factor", args.qdrant_replicas)) if v is not None}
        else:
            from geoseek.index.ivfpq import parse_memory_budget

            options = {"memory_budget": parse_memory_budget(args.memory_budget)} if args.memory_budget else {}
        with Collection.create(path, modality=args.modality, dim=vectors.shape[1], metric=args.metric,
                               backend=args.backend, model_id=args.model_id, index_options=options) as b:
            for s in tqdm(range(0, len(items), batch), desc="adding", unit="batch", disable=len(items) <= batch):
                b.add(items[s:s + batch], np.asarray(vectors[s:s + batch]))
        added = len(items)
    else:
        with Collection.open(path) as col:
            if vectors.shape[1] != col.dim:
                raise InvalidInputError(f"the vectors have {vectors.shape[1]} dimensions, {col.name} has {col.dim}")
            for s in tqdm(range(0, len(items), batch), desc="adding", unit="batch", disable=len(items) <= batch):
                col.add(items[s:s + batch], np.asarray(vectors[s:s + batch]))
    return len(items)


def run_search(args: argparse.Namespace) -> int:
    from geoseek.cli.search import print_hits
    from geoseek.search import filter_from_args, select_mode
    from geoseek.search.vector import MODES

    args.filter = filter_from_args(args)
    mode = select_mode(MODES, args)
    with _open(args.collection) as col:
        hits = mode.run(col, args)
        print_hits(hits, col.name, mode.name, args)
    return 0


def run_remove(args: argparse.Namespace) -> int:
    ids = list(args.ids)
    if args.ids_file:
        if not args.ids_file.is_file():
            raise NotFoundError(f"ids file {args.ids_file} does not exist")
        ids += [line.strip() for line in args.ids_file.read_text().splitlines() if line.strip()]
    if not ids:
        raise InvalidInputError("give item ids to remove (arguments or --ids-file)")
    from geoseek.collection import collection_path

    with writer_lock(collection_path(args.collection), wait=args.wait), _open(args.collection) as col:
        n = col.remove(ids)
        count = len(col)
    if args.json:
        emit_json({"collection": args.collection, "removed": n, "count": count})
    else:
        print(f"removed {n} items ({count} left)")
    return 0
