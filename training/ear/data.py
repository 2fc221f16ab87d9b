"""Eardrum data: the group split and the assembled negatives, all through the serving crop.

Split rule (written to splits.csv by `write_split`): groups (near-identical video frames of
one ear, both ears of one Ohio patient) are stratified by (source, label) and shuffled with
a fixed seed; in each stratum ~15 % of groups go to test, ~15 % to val, the rest to train.

Negatives are split by their origin so that no picture (or lesion, or generator seed) is on
two sides: the 20 seed photos by file, HAM10000 by lesion_id, synthetic kinds by seed range,
blurred eardrums by the eardrum's own split.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from backend.inference.ear import crop_field_of_view
from training.common.shared_data import SHARED_DATA
from training.ear import synth

SEED = 20240605
SPLITS = ("train", "val", "test")
SOURCES = ("chl", "tur", "ohi")
SOURCE_NAMES = {
    "chl": "Chile Ear Imagery (Viscaino et al. 2020)",
    "tur": "Turkey eardrum dataset (Basaran, Comert & Celik 2020)",
    "ohi": "Ohio OtoMatch (Camalan et al. 2020)",
}
SOURCE_LICENCES = {
    "chl": "CC0 1.0 (as listed)",
    "tur": "licence not stated: research use only",
    "ohi": "CC BY 4.0",
}
# pseudo_membrane (9 images) and foreign_body (3), both Turkey-only, are too few to learn or
# to test; they are left out of the classifier but kept as eardrum positives for the gate.
CLASSES = (
    "normal",
    "earwax",
    "acute_otitis_media",
    "middle_ear_effusion",
    "chronic_otitis_media",
    "myringosclerosis",
    "tympanostomy_tube",
    "otitis_externa",
)
DROPPED_CLASSES = ("pseudo_membrane", "foreign_body")
NEGATIVE_KINDS = ("natural_photo", "skin_ham10000", "blurred_eardrum", *synth.GENERATORS)
# Number of negatives per split and kind (natural photos: variants per seed photo).
NEG_COUNTS = {
    "train": {"natural_photo": 40, "skin_ham10000": 2000, "blurred_eardrum": 400, "synthetic": 400},
    "val": {"natural_photo": 10, "skin_ham10000": 300, "blurred_eardrum": 100, "synthetic": 80},
    "test": {"natural_photo": 10, "skin_ham10000": 500, "blurred_eardrum": 150, "synthetic": 120},
}
SEED_BASE = {"train": 0, "val": 1_000_000, "test": 2_000_000}


@dataclass(frozen=True)
class DataPaths:
    ear: Path
    skin: Path


def default_paths() -> DataPaths:
    return DataPaths(ear=SHARED_DATA / "ear", skin=SHARED_DATA / "skin")


def read_labels(ear_dir: Path) -> pd.DataFrame:
    df = pd.read_csv(ear_dir / "labels.csv")
    df["src"] = df["image_id"].str[:3]
    return df


def group_split(
    df: pd.DataFrame, seed: int = SEED, val: float = 0.15, test: float = 0.15
) -> pd.Series:
    """image_id -> split, grouped by group_id, stratified by the group's (source, label)."""
    groups = df.groupby("group_id").agg(
        src=("src", "first"), label=("label", lambda s: s.mode()[0])
    )
    rng = np.random.default_rng(seed)
    assign: dict[str, str] = {}
    for _, stratum in groups.groupby(["src", "label"], sort=True):
        ids = np.array(sorted(stratum.index))
        rng.shuffle(ids)
        n = len(ids)
        n_test = round(n * test) if n >= 3 else 0
        n_val = round(n * val) if n >= 3 else 0
        for i, gid in enumerate(ids):
            assign[gid] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return df["group_id"].map(assign).rename("split")


def write_split(df: pd.DataFrame, path: Path) -> None:
    out = df[["image_id", "group_id", "src", "label", "split"]].sort_values("image_id")
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _crop_file(path: str) -> np.ndarray:
    return crop_field_of_view(_read_rgb(Path(path)))


def _stable_unit(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def skin_split(skin_dir: Path) -> pd.DataFrame:
    """HAM10000 image ids with a split by lesion_id (a stable hash, so no lesion crosses)."""
    lab = pd.read_csv(skin_dir / "labels.csv")
    u = lab["lesion_id"].map(_stable_unit)
    lab["split"] = np.where(u < 0.7, "train", np.where(u < 0.8, "val", "test"))
    return lab


def skin_picks(skin_dir: Path) -> pd.DataFrame:
    """The HAM10000 images used as negatives: a seeded sample per split."""
    lab = skin_split(skin_dir)
    parts = []
    for split in SPLITS:
        sub = lab[lab.split == split].sort_values("image_id")
        # One image per lesion first, so the sample spans as many lesions as possible.
        sub = sub.drop_duplicates("lesion_id")
        n = min(NEG_COUNTS[split]["skin_ham10000"], len(sub))
        parts.append(sub.sample(n=n, random_state=SEED))
    return pd.concat(parts, ignore_index=True)


def _synthetic(args: tuple[str, int]) -> np.ndarray:
    kind, seed = args
    rng = np.random.default_rng(seed)
    return crop_field_of_view(synth.GENERATORS[kind](rng))


def _natural(args: tuple[str, int]) -> np.ndarray:
    path, seed = args
    return crop_field_of_view(
        synth.natural_variant(_read_rgb(Path(path)), np.random.default_rng(seed))
    )


def _blurred(args: tuple[str, int]) -> np.ndarray:
    path, seed = args
    return crop_field_of_view(synth.blurred(_read_rgb(Path(path)), np.random.default_rng(seed)))


def natural_split(neg_dir: Path) -> dict[str, list[Path]]:
    files = sorted(neg_dir.glob("*.jpg"))
    order = np.random.default_rng(SEED).permutation(len(files))
    n_test = max(1, round(0.2 * len(files)))
    n_val = max(1, round(0.2 * len(files)))
    pick = [files[i] for i in order]
    return {
        "test": pick[:n_test],
        "val": pick[n_test : n_test + n_val],
        "train": pick[n_test + n_val :],
    }


def build_arrays(
    paths: DataPaths, workers: int = 1, limit: int | None = None
) -> dict[str, np.ndarray]:
    """Every eardrum and negative as a 160x160 crop (the serving crop), with labels and splits.

    `limit` keeps only the first N images per (split, kind) for quick smoke runs.
    """
    df = read_labels(paths.ear)
    df["split"] = group_split(df)
    if limit:
        df = df.groupby(["split", "src"], group_keys=False).head(limit)
    df = df.reset_index(drop=True)

    jobs_neg: list[tuple[str, str, object, str]] = []  # (kind, split, fn arg, fn name)
    nat = natural_split(paths.ear / "negatives")
    for split in SPLITS:
        counts = NEG_COUNTS[split]
        for p in nat[split]:
            for k in range(counts["natural_photo"]):
                jobs_neg.append(("natural_photo", split, (str(p), SEED_BASE[split] + k), "natural"))
        for kind in synth.GENERATORS:
            for k in range(counts["synthetic"]):
                seed = SEED_BASE[split] + hash_kind(kind) * 10_000 + k
                jobs_neg.append((kind, split, (kind, seed), "synthetic"))
        ears = df[df.split == split].sort_values("image_id")
        take = ears.sample(n=min(counts["blurred_eardrum"], len(ears)), random_state=SEED)
        for k, iid in enumerate(take.image_id):
            jobs_neg.append(
                (
                    "blurred_eardrum",
                    split,
                    (str(paths.ear / "images" / f"{iid}.jpg"), SEED_BASE[split] + k),
                    "blurred",
                )
            )
    skin = skin_picks(paths.skin)
    for split, iid in zip(skin.split, skin.image_id):
        jobs_neg.append(("skin_ham10000", split, str(paths.skin / "images" / f"{iid}.jpg"), "file"))
    if limit:
        seen: dict[tuple[str, str], int] = {}
        kept = []
        for job in jobs_neg:
            key = (job[0], job[1])
            seen[key] = seen.get(key, 0) + 1
            if seen[key] <= limit:
                kept.append(job)
        jobs_neg = kept

    fns = {"natural": _natural, "synthetic": _synthetic, "blurred": _blurred, "file": _crop_file}
    ear_files = [str(paths.ear / "images" / f"{i}.jpg") for i in df.image_id]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            x_ear = list(pool.map(_crop_file, ear_files, chunksize=32))
            x_neg = list(pool.map(_run_job, [(j[3], j[2]) for j in jobs_neg], chunksize=32))
    else:
        x_ear = [_crop_file(f) for f in ear_files]
        x_neg = [fns[j[3]](j[2]) for j in jobs_neg]

    class_index = {c: i for i, c in enumerate(CLASSES)}
    return {
        "x_ear": np.stack(x_ear),
        "y_ear": np.array([class_index.get(lbl, -1) for lbl in df.label], np.int64),
        "src_ear": np.array([SOURCES.index(s) for s in df.src], np.int64),
        "split_ear": np.array([SPLITS.index(s) for s in df.split], np.int64),
        "id_ear": df.image_id.to_numpy().astype(str),
        "group_ear": df.group_id.to_numpy().astype(str),
        "label_ear": df.label.to_numpy().astype(str),
        "x_neg": np.stack(x_neg),
        "kind_neg": np.array([NEGATIVE_KINDS.index(j[0]) for j in jobs_neg], np.int64),
        "split_neg": np.array([SPLITS.index(j[1]) for j in jobs_neg], np.int64),
    }


def hash_kind(kind: str) -> int:
    return list(synth.GENERATORS).index(kind) + 1


def _run_job(job: tuple[str, object]) -> np.ndarray:
    name, arg = job
    fns = {"natural": _natural, "synthetic": _synthetic, "blurred": _blurred, "file": _crop_file}
    return fns[name](arg)  # type: ignore[arg-type]


def load_or_build(
    cache: Path, paths: DataPaths, workers: int = 1, limit: int | None = None
) -> dict[str, np.ndarray]:
    if cache.exists():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    arrays = build_arrays(paths, workers=workers, limit=limit)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **arrays)
    return arrays
