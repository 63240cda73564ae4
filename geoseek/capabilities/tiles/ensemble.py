"""Tile ensembles: several trained tile encoders saved side by side as one ``tile-ensemble`` checkpoint.

* :func:`member_path` — where member ``i`` of an ensemble is trained (``geoseek train tiles --ensemble N``);
* :func:`ensemble_checkpoints` — combine trained checkpoints into one (and measure its ``val_p10``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geoseek.capabilities.tiles.data import embed_tiles, make_sampler, training_block_tiles
from geoseek.capabilities.tiles.evaluate import knn_report, raw_vectors
from geoseek.errors import InvalidInputError

if TYPE_CHECKING:
    from geoseek.sources.osm import OsmFeatures


def member_path(out: str | Path, i: int) -> Path:
    """Where member ``i`` of the ensemble saved at ``out`` is trained: ``<stem>.m<i><suffix>`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.m{i}{out.suffix}")


def ensemble_checkpoints(
    paths: Sequence[str | Path], out: str | Path, *, features: OsmFeatures | None = None, seed: int | None = None,
) -> dict[str, Any]:
    """Combine trained tile checkpoints into one ``tile-ensemble`` checkpoint at ``out`` (atomic).

    The members must come from the same region and spatial split (the evaluation reads both from
    the checkpoint). With ``features`` (that region) and members trained with ``--val-retrieval``,
    the ensemble's ``val_p10`` is measured on the first member's validation tiles (training
    blocks, land use hidden; drawn with ``seed``, by default that member's training seed).
    Returns {"out", "metrics", "members"}.
    """
    from geoseek.checkpoint import file_checksum, read_checkpoint, save_checkpoint
    from geoseek.encoders.tiles import TileEnsemble

    loaded = [read_checkpoint(p) for p in paths]
    if not loaded:
        raise InvalidInputError("an ensemble needs at least one checkpoint")
    keys = {(pl.get("data", {}).get("source"), json.dumps(pl.get("data", {}).get("split"), sort_keys=True)) for pl in loaded}
    if len(keys) > 1:
        raise InvalidInputError(f"ensemble members come from different regions or spatial splits: {sorted(keys)}")
    config = {"members": [{"model": pl["model"], "config": pl["config"]} for pl in loaded]}
    ens = TileEnsemble(config["members"])
    for member, pl in zip(ens.members, loaded):
        member.load_state_dict(pl["state_dict"])
    ens.eval()
    first = loaded[0]
    metrics: dict[str, Any] = {"members": [pl.get("metrics", {}) for pl in loaded]}
    n_val = int(first.get("data", {}).get("task", {}).get("val_retrieval", 0))
    if features is not None and n_val > 0:
        split = make_sampler(features, first["data"]["task"].get("sampler")).cfg.split
        seed = int(first.get("train", {}).get("seed", 0)) if seed is None else seed
        tiles, labels, centers = training_block_tiles(features, split, n_val, seed)
        metrics["val_p10"] = knn_report(embed_tiles(ens, tiles), labels, centers, 1000.0, ks=(10,))["p_at_10"]
        metrics["val_raw_p10"] = knn_report(raw_vectors(tiles), labels, centers, 1000.0, metric="l2", ks=(10,))["p_at_10"]
    data = {**first.get("data", {}), "members": [{"path": str(p), "checksum": file_checksum(p)} for p in paths]}
    save_checkpoint(out, model_name="tile-ensemble", config=config, model=ens, metrics=metrics, data=data)
    return {"out": str(out), "metrics": metrics, "members": [str(p) for p in paths]}
