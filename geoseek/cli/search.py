"""``geoseek search COLLECTION <mode flags> [-k K] [--bbox W,S,E,N] [--radius LON,LAT,M] [--label L] [--json]``.

The mode flags come from the query modes discovered in :mod:`geoseek.search` when the CLI is
built; exactly one mode must be selected.
"""

from __future__ import annotations

import argparse
import sys

from geoseek.cli import emit_json


def register(verbs: dict[str, argparse.ArgumentParser]) -> None:
    from geoseek.search import add_common_arguments, query_modes

    p = verbs["search"]
    p.add_argument("collection", metavar="COLLECTION", help="collection directory (or name under $GEOSEEK_COLLECTIONS)")
    modes = query_modes()
    group = p.add_argument_group("query modes (give exactly one)")
    for mode in modes.values():
        mode.add_arguments(group)  # type: ignore[arg-type]
    add_common_arguments(p)
    lines = [f"  {name:<10} {m.help}" for name, m in modes.items()]
    p.epilog = "query modes:\n" + "\n".join(lines)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from geoseek.collection import Collection, collection_path
    from geoseek.search import filter_from_args, query_modes, select_mode

    args.filter = filter_from_args(args)
    mode = select_mode(query_modes().values(), args)
    with Collection.open(collection_path(args.collection)) as col:
        mode.check(col)
        hits = mode.run(col, args)
        print_hits(hits, col.name, mode.name, args)
    return 0


def print_hits(hits: list, collection: str, mode: str, args: argparse.Namespace) -> None:
    """A table of hits on stdout, or with ``args.json`` one JSON object."""
    if getattr(args, "json", False):
        emit_json({"collection": collection, "mode": mode, "k": args.k,
                   "filter": args.filter.to_json() if args.filter else None,
                   "hits": [h.to_json() for h in hits]})
        return
    if not hits:
        print("no results", file=sys.stderr)
        return
    print(f"{'rank':>4}  {'score':>9}  {'id':<24} {'label':<16} {'lon,lat':<22} name")
    for h in hits:
        it = h.item
        ll = f"{it.centroid[0]:.5f},{it.centroid[1]:.5f}" if it.centroid else "-"
        print(f"{h.rank:>4}  {h.score:>9.4f}  {it.id:<24} {str(it.label or '-'):<16} {ll:<22} {it.name}")
