"""HAM10000 loading: lesion-grouped split, a compact pack file, and the torch dataset.

The pack (`pack.npz`) holds the original JPEG and PNG bytes (42 MB for all 10,015 images), so
it travels to a GPU machine in one file and decodes in seconds there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, get_worker_info

from backend.inference.skin import CLASSES, INPUT_H, INPUT_W, model_view, normalise
from training.common.augment import phone_photo
from training.common.shared_data import SHARED_DATA

DEFAULT_DATA = SHARED_DATA / "skin"
SCRATCH = Path("/work/scratch/skin")
SPLIT_SEED = 20240607
SPLIT_RULE = (
    "lesion_id-grouped, per-class stratified 80/10/10 over lesions "
    f"(numpy default_rng seed {SPLIT_SEED}); all images of one lesion on one side"
)


def lesion_split(labels: pd.DataFrame, seed: int = SPLIT_SEED) -> pd.DataFrame:
    """Add a `split` column (train/val/test): lesions are shuffled within each class and cut
    80/10/10, so every image of a lesion lands on one side and rare classes reach every split."""
    rng = np.random.default_rng(seed)
    lesions = labels.groupby("lesion_id")["label"].first().reset_index().sort_values("lesion_id")
    assign: dict[str, str] = {}
    for cls in sorted(lesions["label"].unique()):
        ids = lesions.loc[lesions["label"] == cls, "lesion_id"].to_numpy()
        ids = ids[rng.permutation(len(ids))]
        n_val = max(1, round(0.1 * len(ids)))
        n_test = max(1, round(0.1 * len(ids)))
        for i, lid in enumerate(ids):
            assign[lid] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    out = labels.copy()
    out["split"] = out["lesion_id"].map(assign)
    return out


def read_labels(data_dir: Path) -> pd.DataFrame:
    labels = pd.read_csv(data_dir / "labels.csv").sort_values("image_id").reset_index(drop=True)
    unknown = set(labels["label"]) - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown labels in {data_dir}: {sorted(unknown)}")
    return labels


def build_pack(data_dir: Path, out_path: Path, split_csv: Path | None = None) -> pd.DataFrame:
    """Write the split CSV and the pack: image/mask file bytes + ids, labels, splits."""
    table = lesion_split(read_labels(data_dir))
    if split_csv is not None:
        split_csv.parent.mkdir(parents=True, exist_ok=True)
        table[["image_id", "lesion_id", "label", "dx_type", "split"]].to_csv(split_csv, index=False)
    img_bytes, mask_bytes = [], []
    for image_id in table["image_id"]:
        img_bytes.append(
            np.frombuffer((data_dir / "images" / f"{image_id}.jpg").read_bytes(), np.uint8)
        )
        mask_path = data_dir / "masks" / f"{image_id}_segmentation.png"
        mask_bytes.append(np.frombuffer(mask_path.read_bytes(), np.uint8))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out_path,
        image_id=table["image_id"].to_numpy().astype(str),
        label=np.array([CLASSES.index(c) for c in table["label"]], np.int64),
        split=table["split"].to_numpy().astype(str),
        dx_type=table["dx_type"].to_numpy().astype(str),
        img_data=np.concatenate(img_bytes),
        img_off=np.cumsum([0] + [len(b) for b in img_bytes]),
        mask_data=np.concatenate(mask_bytes),
        mask_off=np.cumsum([0] + [len(b) for b in mask_bytes]),
    )
    return table


class Pack:
    """A decoded pack: images (N,h,w,3) RGB uint8, masks (N,h,w) uint8 {0,255}, labels, splits."""

    def __init__(self, path: Path, limit_per_split: int | None = None):
        z = np.load(path)
        self.image_id = z["image_id"]
        self.label = z["label"]
        self.split = z["split"]
        self.dx_type = z["dx_type"]
        keep = np.arange(len(self.label))
        if limit_per_split:
            keep = np.concatenate(
                [
                    np.flatnonzero(self.split == s)[:limit_per_split]
                    for s in ("train", "val", "test")
                ]
            )
        # Read each array once: NpzFile re-reads (and re-inflates) an array on every access.
        io_, mo = z["img_off"], z["mask_off"]
        img_data, mask_data = z["img_data"], z["mask_data"]
        imgs, masks = [], []
        for i in keep:
            im = cv2.imdecode(img_data[io_[i] : io_[i + 1]], cv2.IMREAD_COLOR)[:, :, ::-1]
            mk = cv2.imdecode(mask_data[mo[i] : mo[i + 1]], cv2.IMREAD_GRAYSCALE)
            if mk.shape != im.shape[:2]:
                mk = cv2.resize(mk, im.shape[1::-1], interpolation=cv2.INTER_NEAREST)
            imgs.append(np.ascontiguousarray(im))
            masks.append(((mk > 127) * 255).astype(np.uint8))
        self.images = imgs
        self.masks = masks
        self.image_id = self.image_id[keep]
        self.label = self.label[keep]
        self.split = self.split[keep]
        self.dx_type = self.dx_type[keep]

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


def mask_to_model(mask: np.ndarray) -> np.ndarray:
    """A {0,255} mask at the photo's size -> {0,1} float32 at the model's input size."""
    if mask.shape[0] > mask.shape[1]:
        mask = np.ascontiguousarray(np.rot90(mask, -1))
    m = cv2.resize(mask, (INPUT_W, INPUT_H), interpolation=cv2.INTER_LINEAR)
    return (m >= 128).astype(np.float32)


class SkinDataset(Dataset):
    def __init__(self, pack: Pack, indices: np.ndarray, train: bool, seed: int = 0):
        self.pack = pack
        self.indices = np.asarray(indices)
        self.train = train
        self.seed = seed
        self._rng: np.random.Generator | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        j = int(self.indices[i])
        image, mask = self.pack.images[j], self.pack.masks[j]
        if self.train:
            if self._rng is None:
                # One stream per worker, seeded by torch (itself seeded): reproducible runs,
                # fresh augmentations every epoch even with persistent workers.
                info = get_worker_info()
                base = info.seed if info is not None else torch.initial_seed()
                self._rng = np.random.default_rng([self.seed, base % (1 << 63)])
            image, mask = phone_photo(image, mask, self._rng, scale=(0.6, 1.35))
        x = normalise(model_view(image).pixels)
        return (
            torch.from_numpy(x),
            torch.from_numpy(mask_to_model(mask))[None],
            int(self.pack.label[j]),
        )


def class_weights(labels: np.ndarray, power: float = 0.5) -> np.ndarray:
    """freq^-power, normalised to mean 1 over the classes."""
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(np.float64)
    w = np.where(counts > 0, np.maximum(counts, 1) ** -power, 0.0)
    return w / w[counts > 0].mean()


def main() -> None:
    ap = argparse.ArgumentParser(description="Write the lesion-grouped split and the pack file.")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=SCRATCH / "pack.npz")
    ap.add_argument("--split-csv", type=Path, default=SCRATCH / "split.csv")
    args = ap.parse_args()
    table = build_pack(args.data, args.out, args.split_csv)
    print(table.groupby(["split", "label"]).size().unstack(fill_value=0))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) and {args.split_csv}")


if __name__ == "__main__":
    main()
