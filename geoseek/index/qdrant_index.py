"""The distributed backend: Qdrant through qdrant-client.

One code path for every deployment: ``QdrantIndex(dim, url="http://host:6333")`` talks to a
server or cluster; ``path=DIR`` (or neither, for in-memory) runs qdrant-client's local mode
in-process (exact search; used by the tests). Geographic filters are Qdrant's own
(``GeoBoundingBox``, ``GeoRadius`` in metres) on a ``geo`` payload field; labels are a keyword
``label`` payload matched with ``MatchAny``.

Persistence: a local index lives in ``<dir>/storage`` (written in place); a server index keeps
its points on the server and only ``config.json`` (URL and Qdrant collection name) is saved.
"""

from __future__ import annotations

import json
import math
import shutil
import uuid
from pathlib import Path

import numpy as np

from geoseek.errors import InvalidInputError
from geoseek.index.base import BACKENDS, CONFIG_FILE, METRICS, Filter, check_add_args, check_vectors

_BATCH = 256
_EDGE_EPS = 1e-9  # degrees


@BACKENDS.register("qdrant")
class QdrantIndex:
    """Vector index on Qdrant.

    Args:
        dim: vector dimension D.
        metric: "ip" (Qdrant DOT) or "l2" (Qdrant EUCLID; scores are negated squared distances).
        url: server / cluster URL; ``None`` for local mode.
        path: local-mode storage directory; ``None`` (and no ``url``) keeps the points in memory.
        collection_name: the Qdrant collection to use (a fresh unique name by default).
        api_key: for a server that requires one.
    """

    backend = "qdrant"

    def __init__(
        self,
        dim: int,
        metric: str = "ip",
        *,
        url: str | None = None,
        path: str | Path | None = None,
        collection_name: str | None = None,
        api_key: str | None = None,
        _create: bool = True,
    ) -> None:
        from qdrant_client import QdrantClient, models

        if metric not in METRICS:
            raise InvalidInputError(f"metric must be one of {METRICS}, got {metric!r}")
        self.dim = int(dim)
        self.metric = metric
        self.url = url
        self.path = Path(path) if path is not None else None
        self.collection_name = collection_name or f"geoseek-{uuid.uuid4().hex[:12]}"
        self._api_key = api_key
        if url is not None:
            self.client = QdrantClient(url=url, api_key=api_key)
        elif self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)
            self.client = QdrantClient(path=str(self.path))
        else:
            self.client = QdrantClient(location=":memory:")
        self._m = models
        if _create and not self.client.collection_exists(self.collection_name):
            distance = models.Distance.DOT if metric == "ip" else models.Distance.EUCLID
            self.client.create_collection(
                self.collection_name, vectors_config=models.VectorParams(size=self.dim, distance=distance)
            )
            if url is not None:  # payload indexes only matter on a server
                self.client.create_payload_index(self.collection_name, "geo", models.PayloadSchemaType.GEO)
                self.client.create_payload_index(self.collection_name, "label", models.PayloadSchemaType.KEYWORD)

    @property
    def is_remote(self) -> bool:
        return self.url is not None

    def __len__(self) -> int:
        return int(self.client.count(self.collection_name, exact=True).count)

    # --- mutation -------------------------------------------------------------------------------

    def add(self, keys: np.ndarray, vectors: np.ndarray, lonlat: np.ndarray | None = None,
            labels: list[str | None] | None = None) -> None:
        keys, vectors, lonlat, labels = check_add_args(keys, vectors, lonlat, labels, self.dim)
        if len(keys) == 0:
            return
        existing = self.client.retrieve(self.collection_name, ids=[int(k) for k in keys[:10_000]],
                                        with_payload=False, with_vectors=False)
        if existing:
            raise InvalidInputError(f"key {existing[0].id} is already in the index")
        for start in range(0, len(keys), _BATCH):
            sl = slice(start, start + _BATCH)
            points = []
            for key, vec, (lon, lat), label in zip(keys[sl], vectors[sl], lonlat[sl], labels[sl]):
                payload: dict = {}
                if math.isfinite(lon) and math.isfinite(lat):
                    payload["geo"] = {"lon": float(lon), "lat": float(lat)}
                if label is not None:
                    payload["label"] = str(label)
                points.append(self._m.PointStruct(id=int(key), vector=vec.tolist(), payload=payload))
            self.client.upsert(self.collection_name, points=points, wait=True)

    def remove(self, keys: np.ndarray) -> int:
        ids = [int(k) for k in np.unique(np.asarray(keys, dtype=np.int64).reshape(-1)) if k >= 0]
        if not ids:
            return 0
        present = [p.id for p in self.client.retrieve(self.collection_name, ids=ids, with_payload=False)]
        if present:
            self.client.delete(self.collection_name, points_selector=self._m.PointIdsList(points=present), wait=True)
        return len(present)

    # --- search ---------------------------------------------------------------------------------

    def _filter(self, filter: Filter | None):
        m = self._m
        if filter is None or filter.empty:
            return None
        must = []
        if filter.bbox is not None:
            # geoseek's bbox includes its edges; Qdrant's local mode excludes them: widen by ~0.1 mm
            b, eps = filter.bbox, _EDGE_EPS
            w, s, e, n = max(b.west - eps, -180.0), max(b.south - eps, -90.0), min(b.east + eps, 180.0), min(b.north + eps, 90.0)
            must.append(m.FieldCondition(key="geo", geo_bounding_box=m.GeoBoundingBox(
                top_left=m.GeoPoint(lon=w, lat=n), bottom_right=m.GeoPoint(lon=e, lat=s))))
        if filter.radius is not None:
            r = filter.radius
            must.append(m.FieldCondition(key="geo", geo_radius=m.GeoRadius(
                center=m.GeoPoint(lon=r.lon, lat=r.lat), radius=float(r.metres))))
        if filter.labels is not None:
            must.append(m.FieldCondition(key="label", match=m.MatchAny(any=sorted(filter.labels))))
        return m.Filter(must=must)

    def search(
        self, queries: np.ndarray, k: int, filter: Filter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = check_vectors(queries, self.dim, name="queries")
        k = int(k)
        if k <= 0:
            raise InvalidInputError(f"k must be > 0, got {k}")
        nq = len(queries)
        scores = np.full((nq, k), -np.inf, dtype=np.float32)
        keys = np.full((nq, k), -1, dtype=np.int64)
        qfilter = self._filter(filter)
        for start in range(0, nq, _BATCH):
            requests = [
                self._m.QueryRequest(query=q.tolist(), filter=qfilter, limit=k, with_payload=False)
                for q in queries[start:start + _BATCH]
            ]
            for i, resp in enumerate(self.client.query_batch_points(self.collection_name, requests=requests)):
                for j, point in enumerate(resp.points[:k]):
                    keys[start + i, j] = int(point.id)
                    s = float(point.score)
                    scores[start + i, j] = s if self.metric == "ip" else -(s * s)
        return scores, keys

    def vectors(self, keys: np.ndarray) -> np.ndarray:
        keys = np.asarray(keys, dtype=np.int64).reshape(-1)
        got = {int(p.id): p.vector for p in self.client.retrieve(
            self.collection_name, ids=[int(k) for k in keys], with_vectors=True, with_payload=False)}
        missing = [int(k) for k in keys if int(k) not in got]
        if missing:
            raise KeyError(f"key {missing[0]} is not in the index")
        return np.asarray([got[int(k)] for k in keys], dtype=np.float32).reshape(len(keys), self.dim)

    def keys(self) -> np.ndarray:
        out: list[int] = []
        offset = None
        while True:
            points, offset = self.client.scroll(self.collection_name, limit=10_000, offset=offset,
                                                with_payload=False, with_vectors=False)
            out.extend(int(p.id) for p in points)
            if offset is None:
                return np.asarray(out, dtype=np.int64)

    # --- persistence ----------------------------------------------------------------------------

    def config(self) -> dict:
        return {"backend": self.backend, "dim": self.dim, "metric": self.metric, "url": self.url,
                "collection_name": self.collection_name, "count": len(self)}

    def save(self, path: Path) -> None:
        """Write ``config.json`` (and, in local mode, the points under ``storage/``) into ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        storage = path / "storage"
        if not self.is_remote and (self.path is None or self.path.resolve() != storage.resolve()):
            if storage.exists():
                shutil.rmtree(storage)
            copy = QdrantIndex(self.dim, self.metric, path=storage, collection_name=self.collection_name)
            offset = None
            while True:
                points, offset = self.client.scroll(self.collection_name, limit=_BATCH, offset=offset,
                                                    with_payload=True, with_vectors=True)
                if points:
                    copy.client.upsert(self.collection_name, wait=True, points=[
                        self._m.PointStruct(id=p.id, vector=p.vector, payload=p.payload) for p in points])
                if offset is None:
                    break
            copy.close()
        (path / CONFIG_FILE).write_text(json.dumps(self.config(), indent=1))

    @classmethod
    def load(cls, path: Path, api_key: str | None = None) -> QdrantIndex:
        path = Path(path)
        try:
            config = json.loads((path / CONFIG_FILE).read_text())
            url = config.get("url")
            if url is None and not (path / "storage").is_dir():
                raise OSError(f"{path / 'storage'} is missing")
            self = cls(config["dim"], config["metric"], url=url, path=None if url else path / "storage",
                       collection_name=config["collection_name"], api_key=api_key, _create=False)
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidInputError(f"cannot read the Qdrant index in {path}: {exc}") from None
        except RuntimeError as exc:  # local storage locked by another process
            raise InvalidInputError(f"cannot open the Qdrant index in {path}: {exc}") from None
        if not self.client.collection_exists(self.collection_name):
            raise InvalidInputError(f"Qdrant collection {self.collection_name!r} does not exist ({path})")
        return self

    def destroy(self) -> None:
        """Delete the Qdrant collection (server mode: the points on the server)."""
        try:
            self.client.delete_collection(self.collection_name)
        finally:
            self.close()

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - closing twice is harmless
            pass
