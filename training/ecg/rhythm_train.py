"""Train the rhythm CNN (normal / AF / other / noisy) on the CinC 2017 strips.

Input: the arrays written by rhythm_dataset.py. Crops of 9-30 s (one random length per batch)
so the model serves a 10 s 12-lead lead and a 60 s strip alike; model selection by the
challenge score (mean F1 of normal, AF, other) on the validation split, never on the test split.
Several seeds can be trained; each member's best-on-validation weights are saved.

    python -m training.ecg.rhythm_train --data .gpu/ecg/cinc250.npz --out /work/scratch/ecg/rhythm

A checkpoint is written after every epoch; the same command with --resume continues a stopped
run (on 2 CPU threads an epoch takes ~155 s: 40 epochs are about 6300 s).

More training does not help (H100, 2026-11-24): the shipped member had 170 s (27 epochs, best
validation score 0.8405). Four width-32 seeds and one width-48 run given 420 s each (~65 epochs
of a 90-epoch cosine) peaked at 0.830-0.841 (epochs 28-52) and ended lower, 0.806-0.826, as the
training loss kept falling: they overfit. Averaging their probabilities did not help either: the
best of all 31 subsets scored 0.8431 (seeds 0-2), all five 0.8322. The data, not the compute, is
the limit.

--fold k trains on train + val minus one of rhythm_dataset.cv_folds' folds for a fixed number of
epochs and keeps the last weights: out-of-fold CNN scores for the second stage. Those five folds
also make a less noisy yardstick for recipes than the 725 validation strips (rules set before
training): --ema 0.998, with or without --weight-decay 0.05, scored out-of-fold 0.822 / 0.826 for
the CNN alone and 0.838 / 0.838 with the second stage, against 0.831 / 0.839 for the shipped
recipe (no EMA, weight decay 0.01): not adopted.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from training.common.progress import progress_bar
from training.ecg.rhythm_dataset import cv_folds
from training.ecg.rhythm_model import RhythmNet

FS = 250
MIN_CROP, MAX_CROP = 9 * FS, 30 * FS


def challenge_f1(y: np.ndarray, pred: np.ndarray) -> tuple[float, list[float]]:
    """Mean F1 of normal (0), AF (1) and other (2), the CinC 2017 score; also per-class F1."""
    f1s = []
    for c in range(4):
        tp = np.sum((pred == c) & (y == c))
        denom = np.sum(pred == c) + np.sum(y == c)
        f1s.append(float(2 * tp / denom) if denom else 0.0)
    return float(np.mean(f1s[:3])), f1s


def schedule(frac: float, max_lr: float) -> float:
    """Linear warm-up then cosine decay over the run's progress (epochs or time, whichever is
    further), so a run cut short by its time budget still ends at a low learning rate."""
    if frac < 0.1:
        return max_lr * (0.1 + 0.9 * frac / 0.1)
    return max_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (frac - 0.1) / 0.9))) + 1e-5


def normalise(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Same as preprocess.rhythm_input, over the valid (unpadded) samples of each row."""
    n = valid.sum(1, keepdim=True).clamp(min=1)
    mean = (x * valid).sum(1, keepdim=True) / n
    var = (((x - mean) * valid) ** 2).sum(1, keepdim=True) / n
    out = ((x - mean) / (var.sqrt() + 1e-3)).clamp(-20, 20)
    return out * valid


@torch.no_grad()
def predict_full(model: RhythmNet, signals: list[np.ndarray], device: str) -> np.ndarray:
    """Logits for whole records, batched by equal length (no padding inside the pooled window)."""
    model.eval()
    out = np.zeros((len(signals), 4), dtype=np.float32)
    by_len: dict[int, list[int]] = {}
    for i, s in enumerate(signals):
        by_len.setdefault(len(s), []).append(i)
    for idx in by_len.values():
        for k in range(0, len(idx), 256):
            chunk = idx[k : k + 256]
            x = torch.from_numpy(np.stack([signals[i] for i in chunk])).to(device).float()
            x = normalise(x, torch.ones_like(x))
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
                logits, _ = model(x[:, None, :])
            out[chunk] = logits.float().cpu().numpy()
    return out


def _cpu_copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the module's weights (what a checkpoint saves)."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def train_member(seed: int, data: dict, args: argparse.Namespace, device: str, log) -> dict:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = RhythmNet(width=args.width).to(device)
    tr = data["train_idx"]
    counts = np.bincount(data["y"][tr], minlength=4)
    weights = torch.tensor((counts.sum() / counts) ** 0.5, dtype=torch.float32)
    weights = (weights / weights.mean()).to(device)
    steps_per_epoch = math.ceil(len(tr) / args.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    # An exponential moving average of the weights (and BatchNorm statistics) is what gets scored
    # and saved when --ema is given.
    ema = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True)
        if args.ema
        else None
    )
    padded, lengths, y_all = data["padded"], data["lengths"], data["y_t"]
    history, best, best_state = [], -1.0, None
    start_epoch, elapsed = 0, 0.0
    last_path = args.out / f"rhythm_member{seed}.last.pt"
    if args.resume and last_path.exists():
        ck = torch.load(last_path, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        rng.bit_generator.state = ck["rng"]
        torch.set_rng_state(ck["torch_rng"])
        history, best, best_state = ck["history"], ck["best"], ck["best_state"]
        if ema is not None and ck.get("ema") is not None:
            ema.load_state_dict(ck["ema"])
        start_epoch, elapsed = ck["epoch"], ck["elapsed_s"]
        log(f"resumed member {seed} at epoch {start_epoch} ({elapsed:.0f} s done)")
    t0 = time.time() - elapsed
    bar = progress_bar(args.epochs, f"rhythm CNN (member {seed})", initial=start_epoch)
    for epoch in range(start_epoch, args.epochs):
        if time.time() - t0 > args.budget_s:
            break
        model.train()
        perm = rng.permutation(tr)
        total = 0.0
        for k in range(steps_per_epoch):
            if time.time() - t0 > args.budget_s:
                break
            b = torch.from_numpy(perm[k * args.batch : (k + 1) * args.batch]).to(device)
            crop = int(rng.integers(MIN_CROP, MAX_CROP + 1))
            lens = lengths[b]
            start = (torch.rand(len(b), device=device) * (lens - crop).clamp(min=0)).long()
            pos = start[:, None] + torch.arange(crop, device=device)[None, :]
            valid = (pos < lens[:, None]).float()
            x = padded[b[:, None], pos.clamp(max=padded.shape[1] - 1)].float() * valid
            flip = (torch.rand(len(b), 1, device=device) < 0.3).float() * -2 + 1
            x = x * flip
            x = normalise(x, valid)
            t = torch.arange(crop, device=device)[None, :] / FS
            wander = (torch.rand(len(b), 1, device=device) * 0.3) * torch.sin(
                2 * math.pi * (0.05 + 0.4 * torch.rand(len(b), 1, device=device)) * t
                + 6.3 * torch.rand(len(b), 1, device=device)
            )
            noise = torch.randn_like(x) * torch.rand(len(b), 1, device=device) * 0.05
            x = (x + (wander + noise)) * valid
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
                logits, _ = model(x[:, None, :])
            loss = F.cross_entropy(logits.float(), y_all[b], weight=weights, label_smoothing=0.05)
            frac = max(
                (epoch + k / steps_per_epoch) / args.epochs, (time.time() - t0) / args.budget_s
            )
            for group in opt.param_groups:
                group["lr"] = schedule(frac, args.lr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            total += loss.item()
        row = {
            "member": seed,
            "epoch": epoch + 1,
            "train_loss": total / steps_per_epoch,
            "elapsed_s": round(time.time() - t0, 1),
        }
        progress = max((epoch + 1) / args.epochs, (time.time() - t0) / args.budget_s)
        scored = model if ema is None else ema.module
        if args.fold is not None:  # no selection: the held-out fold's scores must stay unseen
            best_state = _cpu_copy(scored)
            torch.save(best_state, args.out / f"rhythm_fold{args.fold}.pt")
        elif progress >= 0.35:
            val_logits = predict_full(scored, data["val_signals"], device)
            score, f1s = challenge_f1(data["y"][data["val_idx"]], val_logits.argmax(1))
            row.update(val_score=score, val_f1=f1s)
            if score > best:
                best = score
                best_state = _cpu_copy(scored)
                torch.save(best_state, args.out / f"rhythm_member{seed}.pt")
        history.append(row)
        bar.update(1)
        bar.set_postfix(
            loss=f"{row['train_loss']:.3f}", val_score=f"{row.get('val_score', 0.0):.3f}",
            refresh=False,
        )
        log(json.dumps(row))
        # Every epoch, so a stopped CPU run resumes where it was (--resume).
        torch.save(
            {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "history": history,
                "best": best,
                "best_state": best_state,
                "ema": None if ema is None else ema.state_dict(),
                "epoch": epoch + 1,
                "elapsed_s": time.time() - t0,
            },
            last_path,
        )
    bar.close()
    return {"state": best_state, "best_val_score": best, "history": history}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument(
        "--ema", type=float, default=0.0, help="score and save an EMA of the weights (e.g. 0.998)"
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument(
        "--budget-s", type=float, default=1e9, help="wall-clock training budget per member"
    )
    ap.add_argument("--limit", type=int, default=None, help="records per split for a dry run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--folds", type=int, default=5, help="with --fold: the number of cross-validation folds"
    )
    ap.add_argument(
        "--fold",
        type=int,
        default=None,
        help="train on train + val minus this fold (rhythm_dataset.cv_folds) for a fixed number of "
        "epochs, no selection, and save the last weights as rhythm_fold<k>.pt",
    )
    ap.add_argument(
        "--resume", action="store_true", help="continue from each member's last epoch checkpoint"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    args.out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, flush=True)

    z = np.load(args.data)
    d = z["delta"]  # delta-coded int16 microvolts, see rhythm_dataset.py
    signals = [
        np.cumsum(d[s : s + n].astype(np.int32)).astype(np.float32) / 1000.0
        for s, n in zip(z["start"], z["length"])
    ]
    y, split = z["y"].astype(np.int64), z["split"]
    train_idx, val_idx = np.flatnonzero(split == 0), np.flatnonzero(split == 1)
    if args.fold is not None:
        trval = np.flatnonzero(split < 2)
        fold = cv_folds(y[trval], args.folds)
        train_idx, val_idx = trval[fold != args.fold], np.array([], dtype=np.int64)
    if args.limit:
        train_idx, val_idx = train_idx[: args.limit], val_idx[: args.limit // 4]
    lengths = np.array([len(s) for s in signals])
    padded = np.zeros((len(signals), lengths.max()), dtype=np.float16)
    for i in np.concatenate([train_idx, val_idx]):
        padded[i, : lengths[i]] = signals[i]
    data = {
        "padded": torch.from_numpy(padded).to(device),
        "lengths": torch.from_numpy(lengths).to(device),
        "y": y,
        "y_t": torch.from_numpy(y).to(device),
        "train_idx": train_idx,
        "val_idx": val_idx,
        "val_signals": [signals[i] for i in val_idx],
    }
    log(f"device={device} train={len(train_idx)} val={len(val_idx)} seeds={args.seeds}")
    summary = []
    for seed in args.seeds:
        res = train_member(seed, data, args, device, log)
        summary.append(
            {"seed": seed, "best_val_score": res["best_val_score"], "history": res["history"]}
        )
        (args.out / f"rhythm_history{'_'.join(map(str, args.seeds))}.json").write_text(
            json.dumps(
                {"args": {k: str(v) for k, v in vars(args).items()}, "members": summary}, indent=1
            )
        )
    log("done")


if __name__ == "__main__":
    main()
