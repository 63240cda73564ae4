"""Species occurrence data for geo-aware classification: real files and synthetic sets.

* :func:`load_inat_yfcc` — ``yfcc100m_geolocated_inat2017species.csv.zip`` (visipedia/fg_geo):
  36,143 geotagged YFCC100M photos of 4,472 iNat2017 species; columns ``yfcc100m ID,
  yfcc100m line number, label, latitude, longitude, Flickr URL, mmcommons URL``.
* :func:`load_ariolimax` — ``ariolimax.gpkg`` (elapid 1.0.4): 1,595 presence and 4,990
  background points of the banana slug in California, EPSG:32610, read with sqlite3.
* :func:`vmf_mixture` — mixtures of von Mises–Fisher distributions on the sphere (the
  synthetic benchmark of Sphere2Vec), with :data:`VMF_SETS` as documented presets.
* :func:`split_per_class` — the seeded, per-class train/val/test split used everywhere.

All coordinates are returned as (lon, lat) degrees, shape (N, 2), float64.
"""

from __future__ import annotations

import csv
import io
import math
import sqlite3
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geoseek.errors import InvalidInputError, NotFoundError
from geoseek.geo import as_lonlat

INAT_FILE = "occurrences/yfcc100m_geolocated_inat2017species.csv.zip"
ARIOLIMAX_FILE = "occurrences/ariolimax.gpkg"


@dataclass
class Occurrences:
    """Labelled points: ``lonlat`` (N, 2) degrees, ``labels`` (N,) int64 in [0, len(classes))."""

    lonlat: np.ndarray
    labels: np.ndarray
    classes: list[str]
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# --- iNat2017 species in YFCC100M -----------------------------------------------------------------


def load_inat_yfcc(path: str | Path) -> Occurrences:
    """Read the fg_geo csv.zip; classes are the species names sorted alphabetically."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"occurrence file not found: {path}")
    with zipfile.ZipFile(path) as zf:
        member = next((n for n in zf.namelist() if n.endswith(".csv") and not n.startswith("__MACOSX")), None)
        if member is None:
            raise InvalidInputError(f"{path} holds no .csv file")
        with zf.open(member) as f:
            reader = csv.DictReader(io.TextIOWrapper(f, encoding="utf-8"))
            missing = {"label", "latitude", "longitude"} - set(reader.fieldnames or ())
            if missing:
                raise InvalidInputError(f"{path}:{member} lacks column(s) {', '.join(sorted(missing))}")
            rows = [(r["label"], float(r["longitude"]), float(r["latitude"])) for r in reader]
    names = np.array([r[0] for r in rows], dtype=object)
    classes, labels = np.unique(names, return_inverse=True)
    lonlat = as_lonlat(np.array([(r[1], r[2]) for r in rows]), name=str(path))
    return Occurrences(lonlat, labels.astype(np.int64), [str(c) for c in classes], name="inat", meta={"file": str(path)})


# --- Ariolimax presence / background (GeoPackage) -------------------------------------------------

_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def gpkg_geometry_to_wkb(blob: bytes) -> bytes:
    """Strip the GeoPackage binary header ("GP", version, flags, srs_id, envelope) → WKB."""
    if len(blob) < 8 or blob[:2] != b"GP":
        raise InvalidInputError("not a GeoPackage geometry blob (no 'GP' magic)")
    flags = blob[3]
    envelope = (flags >> 1) & 0b111
    if envelope not in _ENVELOPE_BYTES:
        raise InvalidInputError(f"invalid GeoPackage envelope indicator {envelope}")
    return blob[8 + _ENVELOPE_BYTES[envelope] :]


def load_ariolimax(path: str | Path) -> Occurrences:
    """Presence (label 1) and background (label 0) points, reprojected to (lon, lat) degrees."""
    import pyproj
    import shapely

    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"GeoPackage not found: {path}")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        table, column, srs = con.execute(
            "select table_name, column_name, srs_id from gpkg_geometry_columns limit 1"
        ).fetchone()
        cols = {r[1] for r in con.execute(f'pragma table_info("{table}")')}
        if "presence" not in cols:
            raise InvalidInputError(f"{path}: table {table!r} has no 'presence' column")
        rows = con.execute(f'select "{column}", presence from "{table}" order by fid').fetchall()
    except sqlite3.DatabaseError as exc:
        raise InvalidInputError(f"{path} is not a readable GeoPackage: {exc}") from None
    finally:
        con.close()
    geoms = shapely.from_wkb([gpkg_geometry_to_wkb(r[0]) for r in rows])
    xy = shapely.get_coordinates(geoms)
    if len(xy) != len(rows):
        raise InvalidInputError(f"{path}: expected one point per row")
    tf = pyproj.Transformer.from_crs(f"EPSG:{srs}", "EPSG:4326", always_xy=True)
    lon, lat = tf.transform(xy[:, 0], xy[:, 1])
    labels = np.array([int(r[1]) for r in rows], dtype=np.int64)
    return Occurrences(
        as_lonlat(np.stack([lon, lat], axis=1), name=str(path)),
        labels,
        ["background", "presence"],
        name="ariolimax",
        meta={"file": str(path), "srs": int(srs)},
    )


# --- synthetic von Mises–Fisher mixtures ----------------------------------------------------------


@dataclass(frozen=True)
class VMFSpec:
    """Parameters of a synthetic set: ``num_classes`` classes, each a mixture of
    ``components`` (min, max) vMF components with concentrations κ log-uniform in
    ``kappa`` and centres uniform on the sphere restricted to ``|lat| >= min_abs_lat``
    (degrees); ``per_class`` points per class, mixture weights Dirichlet(1)."""

    num_classes: int = 50
    components: tuple[int, int] = (1, 3)
    kappa: tuple[float, float] = (20.0, 500.0)
    min_abs_lat: float = 0.0
    per_class: int = 300


VMF_SETS: dict[str, VMFSpec] = {
    # centres anywhere: angular spread 1/√κ ≈ 2.6°–12.8°
    "vmf-global": VMFSpec(),
    # centres within 20° of a pole: where a planar (lon, lat) encoding is most distorted
    "vmf-polar": VMFSpec(min_abs_lat=70.0),
    # tighter clusters (1/√κ ≈ 1.3°–4°) within 10° of a pole
    "vmf-polar-tight": VMFSpec(kappa=(200.0, 2000.0), min_abs_lat=80.0),
}


def _to_xyz(lonlat: np.ndarray) -> np.ndarray:
    lam, phi = np.radians(lonlat[:, 0]), np.radians(lonlat[:, 1])
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=1)


def _to_lonlat(xyz: np.ndarray) -> np.ndarray:
    xyz = xyz / np.linalg.norm(xyz, axis=1, keepdims=True)
    lon = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))
    lat = np.degrees(np.arcsin(np.clip(xyz[:, 2], -1.0, 1.0)))
    return np.stack([lon, lat], axis=1)


def sample_vmf(mu: np.ndarray, kappa: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row from vMF(μ_i, κ_i) on S² (Wood 1994, exact for p = 3): (N, 3) unit vectors.

    ``w = 1 + log(u + (1 − u) e^{−2κ}) / κ`` is the cosine to μ; the tangent direction is uniform.
    """
    n = len(mu)
    u = rng.uniform(0.0, 1.0, n)
    w = 1.0 + np.log(u + (1.0 - u) * np.exp(-2.0 * kappa)) / kappa
    w = np.clip(w, -1.0, 1.0)
    # orthonormal tangent basis at μ
    helper = np.where(np.abs(mu[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    e1 = np.cross(mu, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(mu, e1)
    t = rng.uniform(0.0, 2 * math.pi, n)
    s = np.sqrt(np.clip(1.0 - w * w, 0.0, None))
    return w[:, None] * mu + s[:, None] * (np.cos(t)[:, None] * e1 + np.sin(t)[:, None] * e2)


def vmf_mixture(spec: VMFSpec | str, seed: int = 0) -> Occurrences:
    """Draw a synthetic labelled set from ``spec`` (a :class:`VMFSpec` or a name in :data:`VMF_SETS`)."""
    name = spec if isinstance(spec, str) else "vmf"
    if isinstance(spec, str):
        if spec not in VMF_SETS:
            raise InvalidInputError(f"unknown synthetic set {spec!r}; known: {', '.join(VMF_SETS)}")
        spec = VMF_SETS[spec]
    rng = np.random.default_rng(seed)
    k_lo, k_hi = spec.components
    n_comp = rng.integers(k_lo, k_hi + 1, spec.num_classes)
    total = int(n_comp.sum())
    # centres: z = sin(lat) uniform on the allowed caps → uniform area density
    z_min = math.sin(math.radians(spec.min_abs_lat))
    z = rng.uniform(z_min, 1.0, total) * rng.choice([-1.0, 1.0], total)
    centres = _to_lonlat(np.stack([np.sqrt(1 - z * z), np.zeros(total), z], axis=1))
    centres[:, 0] = rng.uniform(-180.0, 180.0, total)
    kappas = np.exp(rng.uniform(math.log(spec.kappa[0]), math.log(spec.kappa[1]), total))
    owner = np.repeat(np.arange(spec.num_classes), n_comp)
    # per class: Dirichlet(1) weights over its components, then a component per point
    labels = np.repeat(np.arange(spec.num_classes), spec.per_class)
    comp = np.empty(len(labels), dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(n_comp)[:-1]])
    for c in range(spec.num_classes):  # per class, not per point
        wts = rng.dirichlet(np.ones(n_comp[c]))
        comp[c * spec.per_class : (c + 1) * spec.per_class] = starts[c] + rng.choice(n_comp[c], spec.per_class, p=wts)
    assert (owner[comp] == labels).all()
    xyz = sample_vmf(_to_xyz(centres)[comp], kappas[comp], rng)
    lonlat = _to_lonlat(xyz)
    return Occurrences(
        lonlat,
        labels.astype(np.int64),
        [f"class{c:03d}" for c in range(spec.num_classes)],
        name=name,
        meta={"spec": spec.__dict__ | {"components": list(spec.components), "kappa": list(spec.kappa)}, "seed": seed},
    )


# --- split ----------------------------------------------------------------------------------------


def split_per_class(
    labels: np.ndarray, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2), seed: int = 0
) -> dict[str, np.ndarray]:
    """Seeded per-class split into ``train`` / ``val`` / ``test`` index arrays (sorted).

    Within each class (random order from ``seed``) the first ``round(f_test · n)`` points go
    to test (at least 1 when n ≥ 2), the next ``round(f_val · n)`` to val, the rest to train;
    a class seen once stays in train. Every test class therefore also occurs in train.
    """
    labels = np.asarray(labels)
    f_train, f_val, f_test = fractions
    if min(fractions) < 0 or abs(f_train + f_val + f_test - 1.0) > 1e-9:
        raise InvalidInputError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    order = order[np.argsort(labels[order], kind="stable")]  # grouped by class, random within
    lab = labels[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    counts = np.diff(np.r_[starts, len(lab)])
    rank = np.arange(len(lab)) - np.repeat(starts, counts)
    n = np.repeat(counts, counts)
    n_test = np.where(n >= 2, np.maximum(1, np.round(f_test * n)), 0)
    n_val = np.where(n >= 3, np.round(f_val * n), 0)
    n_val = np.minimum(n_val, np.maximum(n - n_test - 1, 0))
    test = rank < n_test
    val = ~test & (rank < n_test + n_val)
    return {
        "train": np.sort(order[~test & ~val]),
        "val": np.sort(order[val]),
        "test": np.sort(order[test]),
    }
