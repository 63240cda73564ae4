"""Sketch ↔ aerial image datasets: folder readers and zero-shot folds.

Readers return lists of :class:`Sample` (path, class name). Supported layouts:

* **RSketch / RSketch_Ext**: ``<root>/{train,test}/{sketch,image}/<class>/*`` (also the released
  MLAGT test layout ``test/{query,database}/<class>/*``) → :func:`read_rsketch`.
* **Earth on Canvas**: ``<root>/<Sketch*|sketches>/<class>/*`` and ``<root>/<Image*|images>/<class>/*``
  (case-insensitive) → :func:`read_earth_on_canvas`.
* **Plain class folders** (UC Merced, AID): ``<root>/<class>/*.jpg|png|tif`` → :func:`read_class_folders`.

Zero-shot folds: :data:`RSKETCH_CLASSES` and :data:`UCM_AID_CLASSES` are each split into four
folds of 15 seen / 5 unseen classes; every class is unseen in exactly one fold. The splits are
drawn with a fixed seed by :func:`make_folds` and committed under ``geoseek/assets/folds/``;
:func:`load_folds` reads them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from geoseek.errors import InvalidInputError, NotFoundError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
FOLDS_DIR = Path(__file__).resolve().parents[1] / "assets" / "folds"


@dataclass(frozen=True)
class Sample:
    """One file of a dataset: ``path`` and its class ``label``."""

    path: Path
    label: str


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def read_class_folders(root: str | Path, classes: list[str] | None = None) -> list[Sample]:
    """Images under ``root/<class>/``; the folder name is the label. ``classes`` restricts them."""
    root = Path(root)
    if not root.is_dir():
        raise NotFoundError(f"no image folder at {root}")
    out: list[Sample] = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if classes is not None and d.name not in classes:
            continue
        out.extend(Sample(f, d.name) for f in _files(d))
    if not out:
        raise InvalidInputError(f"{root} has no images in class sub-folders (<root>/<class>/*.jpg)")
    return out


def read_rsketch(root: str | Path) -> dict[str, dict[str, list[Sample]]]:
    """RSketch / RSketch_Ext: ``{"train": {"sketch": [...], "image": [...]}, "test": {...}}``."""
    root = Path(root)
    if not root.is_dir():
        raise NotFoundError(f"no RSketch folder at {root}")
    out: dict[str, dict[str, list[Sample]]] = {}
    aliases = {"sketch": ("sketch", "query"), "image": ("image", "database")}
    for split in ("train", "test"):
        sdir = root / split
        if not sdir.is_dir():
            continue
        out[split] = {}
        for kind, names in aliases.items():
            for name in names:
                if (sdir / name).is_dir():
                    out[split][kind] = read_class_folders(sdir / name)
                    break
    if not out:
        raise InvalidInputError(f"{root} is not an RSketch layout ({{train,test}}/{{sketch,image}}/<class>/)")
    return out


def read_earth_on_canvas(root: str | Path) -> dict[str, list[Sample]]:
    """Earth on Canvas: ``{"sketch": [...], "image": [...]}`` from sketch / image class folders."""
    root = Path(root)
    if not root.is_dir():
        raise NotFoundError(f"no Earth on Canvas folder at {root}")
    out: dict[str, list[Sample]] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        low = d.name.lower()
        kind = "sketch" if low.startswith("sketch") else "image" if low.startswith(("image", "photo")) else None
        if kind and kind not in out:
            out[kind] = read_class_folders(d)
    if "sketch" not in out:
        raise InvalidInputError(f"{root} has no sketch folder (expected <root>/sketches/<class>/ and <root>/images/<class>/)")
    return out


# ------------------------------------------------------------------------------ our class set
UCM_AID_CLASSES: dict[str, list[tuple[str, str]]] = {
    # canonical class: [(dataset folder under imagery/, class folder), ...]
    "airplane": [("ucmerced", "airplane")],
    "baseball_diamond": [("ucmerced", "baseballdiamond"), ("aid-100", "BaseballField")],
    "beach": [("ucmerced", "beach"), ("aid-100", "Beach")],
    "bridge": [("aid-100", "Bridge")],
    "church": [("aid-100", "Church")],
    "dense_residential": [("ucmerced", "denseresidential"), ("aid-100", "DenseResidential")],
    "farmland": [("ucmerced", "agricultural"), ("aid-100", "Farmland")],
    "forest": [("ucmerced", "forest"), ("aid-100", "Forest")],
    "freeway": [("ucmerced", "freeway")],
    "golf_course": [("ucmerced", "golfcourse")],
    "harbor": [("ucmerced", "harbor"), ("aid-100", "Port")],
    "intersection": [("ucmerced", "intersection")],
    "mountain": [("aid-100", "Mountain")],
    "parking_lot": [("ucmerced", "parkinglot"), ("aid-100", "Parking")],
    "pond": [("aid-100", "Pond")],
    "river": [("ucmerced", "river"), ("aid-100", "River")],
    "runway": [("ucmerced", "runway")],
    "stadium": [("aid-100", "Stadium")],
    "storage_tanks": [("ucmerced", "storagetanks"), ("aid-100", "StorageTanks")],
    "tennis_court": [("ucmerced", "tenniscourt")],
}
"""The 20 aerial scene classes of our UC Merced + AID benchmark (MLAGT's recipe: 20 classes)."""

RSKETCH_CLASSES: list[str] = [
    "airplane", "baseball_field", "basketball_court", "beach", "bridge", "closed_road", "crossroads",
    "farmland", "football_field", "golf_course", "harbor", "parking_lot", "pond", "railway",
    "river", "runway", "storage_tank", "swimming_pool", "tennis_court", "viaduct",
]
"""The 20 RSketch classes (snake_case of the dataset's folder names)."""


def read_ucm_aid(imagery_dir: str | Path, classes: list[str] | None = None) -> list[Sample]:
    """Samples of :data:`UCM_AID_CLASSES` from ``imagery/{ucmerced,aid-100}``, labelled canonically."""
    imagery_dir = Path(imagery_dir)
    out: list[Sample] = []
    for cls, sources in UCM_AID_CLASSES.items():
        if classes is not None and cls not in classes:
            continue
        for dataset, folder in sources:
            d = imagery_dir / dataset / folder
            if not d.is_dir():
                raise NotFoundError(f"missing class folder {d} (UC Merced / AID-100 expected under {imagery_dir})")
            out.extend(Sample(f, cls) for f in _files(d))
    return out


def query_gallery_split(samples: list[Sample], query_fraction: float = 0.2, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """Split each class's images into sketch sources (queries) and gallery images, disjointly."""
    by_cls: dict[str, list[Sample]] = {}
    for s in samples:
        by_cls.setdefault(s.label, []).append(s)
    rng = random.Random(seed)
    queries, gallery = [], []
    for cls in sorted(by_cls):
        items = sorted(by_cls[cls], key=lambda s: str(s.path))
        rng.shuffle(items)
        n = max(1, int(round(len(items) * query_fraction)))
        queries += items[:n]
        gallery += items[n:]
    return queries, gallery


# ------------------------------------------------------------------------------------- folds
@dataclass(frozen=True)
class Fold:
    """One zero-shot split: train on ``seen``, test retrieval on ``unseen`` (and held-out ``seen``)."""

    index: int
    seen: list[str]
    unseen: list[str]


def make_folds(classes: list[str], n_folds: int = 4, n_unseen: int = 5, seed: int = 0) -> list[Fold]:
    """Shuffle ``classes`` with ``seed`` and give each fold a disjoint block of ``n_unseen`` unseen classes."""
    if n_folds * n_unseen > len(classes):
        raise InvalidInputError(f"{n_folds} folds × {n_unseen} unseen classes need at least {n_folds * n_unseen} classes")
    order = sorted(classes)
    random.Random(seed).shuffle(order)
    folds = []
    for i in range(n_folds):
        unseen = sorted(order[i * n_unseen : (i + 1) * n_unseen])
        folds.append(Fold(i + 1, sorted(c for c in classes if c not in unseen), unseen))
    return folds


def write_folds(name: str, folds: list[Fold], seed: int, note: str = "", directory: Path = FOLDS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    payload = {
        "name": name,
        "seed": seed,
        "note": note,
        "folds": [{"fold": f.index, "seen": f.seen, "unseen": f.unseen} for f in folds],
    }
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def load_folds(name: str = "ucm-aid", directory: Path = FOLDS_DIR) -> list[Fold]:
    """The committed folds ``name`` ("ucm-aid" or "rsketch"), or a path to a folds JSON file."""
    path = Path(name) if name.endswith(".json") else directory / f"{name}.json"
    if not path.is_file():
        raise NotFoundError(f"no folds file {path}")
    data = json.loads(path.read_text())
    return [Fold(f["fold"], list(f["seen"]), list(f["unseen"])) for f in data["folds"]]


FOLD_SEED = 5
"""Seed of the committed folds (``python -m geoseek.sources.datasets`` rewrites them)."""


def _write_default_folds() -> None:  # pragma: no cover - run once to (re)create the assets
    write_folds(
        "ucm-aid",
        make_folds(list(UCM_AID_CLASSES), seed=FOLD_SEED),
        FOLD_SEED,
        "20 UC Merced + AID classes, 4 folds of 15 seen / 5 unseen; every class unseen once",
    )
    write_folds(
        "rsketch",
        make_folds(RSKETCH_CLASSES, seed=FOLD_SEED),
        FOLD_SEED,
        "RSketch's 20 classes split by the same recipe; MLAGT's Table III lists were not available "
        "offline, so these are a seeded reconstruction, not the paper's exact lists",
    )


if __name__ == "__main__":  # pragma: no cover
    _write_default_folds()
