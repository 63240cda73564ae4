"""``geoseek collection info|add|search|remove``: inspect and edit collections."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from geoseek.cli import emit_json
from geoseek.cli._util import subparsers
from geoseek.errors import InvalidInputError, NotFoundError


def register(verbs: dict[str, argparse.ArgumentParser]) -> None:
    sub = subparsers(verbs["collection"])

    p = sub.add_parser("info", help="show a collection's manifest and counts",
                       description="Show a collection's manifest, counts, labels, arrays and files.")
    p.add_argument("collection", help="collection directory")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_info)

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
    p.add_argument("--qdrant-url", help="Qdrant server URL when creating with --backend qdrant")
    p.add_argument("--model-id", default="", help="model id recorded when creating")
    p.add_argument("--batch", type=int, default=50_000, help="items per batch (default 50000)")
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
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_remove)


def _open(path: str):
    from geoseek.collection import Collection, collection_path

    return Collection.open(collection_path(path))


def run_info(args: argparse.Namespace) -> int:
    with _open(args.collection) as col:
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
    text = path.read_text()
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            objs = json.loads(text)
        else:
            objs = []
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        objs.append(json.loads(line))
                    except ValueError as exc:
                        raise InvalidInputError(f"{path}:{n}: not JSON ({exc})") from None
    except ValueError as exc:
        raise InvalidInputError(f"{path}: not JSON ({exc})") from None
    return [Item.from_json(o) for o in objs]


def run_add(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from geoseek.collection import Collection, collection_path

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
    if not path.exists():
        if not args.create:
            raise NotFoundError(f"no collection at {path} (pass --create to make one)")
        options = {"url": args.qdrant_url} if args.qdrant_url else {}
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
        added = len(items)
    with _open(str(path)) as col:
        count = len(col)
    if args.json:
        emit_json({"collection": str(path), "added": added, "count": count})
    else:
        print(f"added {added} items to {path} ({count} in all)")
    return 0


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
    with _open(args.collection) as col:
        n = col.remove(ids)
        count = len(col)
    if args.json:
        emit_json({"collection": args.collection, "removed": n, "count": count})
    else:
        print(f"removed {n} items ({count} left)")
    return 0
