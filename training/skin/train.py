"""Train SkinNet (classifier + lesion mask) on the HAM10000 pack.

    python -m training.skin.data                       # split + pack under /work/scratch/skin
    python -m training.skin.train --out /work/scratch/skin/run --epochs 60 [--resume]

Class imbalance: a WeightedRandomSampler draws classes ~ freq^0.5 and the cross-entropy weighs
them by freq^-0.5, so each class contributes about equally. The checkpoint `last.pt` is written
every epoch (resume with --resume); `best.pt` holds the EMA weights with the best validation
score (balanced accuracy + melanoma AUC + Dice). Selection uses the val split only.
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
from torch.utils.data import DataLoader, WeightedRandomSampler

from backend.inference.skin import CLASSES
from training.common.progress import progress_bar
from training.skin.data import SCRATCH, Pack, SkinDataset, class_weights
from training.skin.metrics import classification_report, dice_iou
from training.skin.model import ARCHS, build_model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pack", type=Path, default=SCRATCH / "pack.npz")
    ap.add_argument("--out", type=Path, default=SCRATCH / "run")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--time-budget", type=float, default=0.0, help="seconds; shortens --epochs")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--seg-weight", type=float, default=1.0)
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="images per split (smoke runs)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (smoke)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", type=Path, default=None, help="start from this checkpoint's weights")
    ap.add_argument("--warmup-epochs", type=float, default=2.0)
    ap.add_argument("--arch", choices=ARCHS, default="lite0")
    ap.add_argument(
        "--encoder-lr-scale", type=float, default=1.0, help="lr factor for a pretrained encoder"
    )
    ap.add_argument("--no-pretrained", action="store_true", help="lite0 from random weights")
    return ap.parse_args(argv)


def seg_loss(mask_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(mask_logits, target)
    p = torch.sigmoid(mask_logits).flatten(1)
    t = target.flatten(1)
    dice = 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
    return bce + dice.mean()


@torch.no_grad()
def predict(
    model: torch.nn.Module, loader: DataLoader, device: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Logits (N,7), predicted masks (N,H,W) bool, true masks, labels."""
    model.eval()
    logits, masks, targets, labels = [], [], [], []
    for x, m, y in loader:
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            lo, ml, _ = model(x)
        logits.append(lo.float().cpu().numpy())
        masks.append((ml.float()[:, 0] > 0).cpu().numpy())
        targets.append(m[:, 0].numpy() > 0.5)
        labels.append(y.numpy())
    return (
        np.concatenate(logits),
        np.concatenate(masks),
        np.concatenate(targets),
        np.concatenate(labels),
    )


def evaluate_split(model: torch.nn.Module, loader: DataLoader, device: str) -> dict:
    logits, masks, targets, labels = predict(model, loader, device)
    report = classification_report(logits, labels, CLASSES)
    dice, iou = dice_iou(masks, targets)
    report.update(dice=round(float(dice.mean()), 4), iou=round(float(iou.mean()), 4))
    return report


def val_score(m: dict) -> float:
    auc = m["melanoma_auc"] if not math.isnan(m["melanoma_auc"]) else 0.0
    return m["balanced_accuracy"] + auc + m["dice"]


def train(args: argparse.Namespace) -> Path:
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    device = args.device
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    args.out.mkdir(parents=True, exist_ok=True)

    pack = Pack(args.pack, limit_per_split=args.limit or None)
    tr_idx, val_idx = pack.indices("train"), pack.indices("val")
    y_tr = pack.label[tr_idx]
    sampler = WeightedRandomSampler(
        torch.as_tensor(class_weights(y_tr, 0.5)[y_tr], dtype=torch.double),
        num_samples=len(tr_idx),
        replacement=True,
        generator=torch.Generator().manual_seed(args.seed),
    )
    common = {
        "num_workers": args.workers,
        "pin_memory": device == "cuda",
        "persistent_workers": args.workers > 0,
    }
    batch = min(args.batch, len(tr_idx))
    train_loader = DataLoader(
        SkinDataset(pack, tr_idx, train=True, seed=args.seed),
        batch_size=batch,
        sampler=sampler,
        drop_last=True,
        **common,
    )
    val_loader = DataLoader(SkinDataset(pack, val_idx, train=False), batch_size=256, **common)

    model = build_model(args.arch, len(CLASSES), pretrained=not args.no_pretrained)
    model = model.to(device).to(memory_format=torch.channels_last)
    if args.init is not None:
        model.load_state_dict(
            torch.load(args.init, map_location=device, weights_only=False)["model"]
        )
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True)
    encoder = getattr(model, "encoder", None)
    enc_ids = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    groups = [
        {
            "params": [p for p in model.parameters() if id(p) in enc_ids],
            "lr": args.lr * args.encoder_lr_scale,
        },
        {"params": [p for p in model.parameters() if id(p) not in enc_ids], "lr": args.lr},
    ]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=args.weight_decay)
    cw = torch.as_tensor(class_weights(y_tr, 0.5), dtype=torch.float32, device=device)
    steps_per_epoch = len(train_loader)
    warmup = max(1, int(args.warmup_epochs * steps_per_epoch))
    state = {"epochs": args.epochs}

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        total = max(state["epochs"] * steps_per_epoch, warmup + 1)
        progress = min(1.0, (step - warmup) / (total - warmup))
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    history: list[dict] = []
    start_epoch, best = 0, -1.0
    last_path, best_path = args.out / "last.pt", args.out / "best.pt"
    if args.resume and last_path.exists():
        ck = torch.load(last_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        start_epoch, best, history = ck["epoch"] + 1, ck["best"], ck["history"]
        state["epochs"] = ck["epochs"]
        print(f"resumed from epoch {ck['epoch']}", flush=True)

    t_start = time.time()
    step = start_epoch * steps_per_epoch
    bar = progress_bar(state["epochs"], "skin model", initial=start_epoch)
    epoch = start_epoch
    # A while loop, not range(): --time-budget may shorten state["epochs"] after epoch 2.
    while epoch < state["epochs"]:
        model.train()
        t0 = time.time()
        sums = np.zeros(2)
        n = 0
        for x, m, y in train_loader:
            x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            m = m.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
                logits, mask_logits, _ = model(x)
            ce = F.cross_entropy(logits.float(), y, weight=cw, label_smoothing=0.05)
            sl = seg_loss(mask_logits.float(), m)
            loss = ce + args.seg_weight * sl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            ema.update_parameters(model)
            sums += (ce.item(), sl.item())
            n += 1
            step += 1
            if args.max_steps and step >= args.max_steps:
                break
        train_s = time.time() - t0
        metrics = evaluate_split(ema.module, val_loader, device)
        row = {
            "epoch": epoch,
            "lr": opt.param_groups[-1]["lr"],
            "train_ce": sums[0] / max(n, 1),
            "train_seg": sums[1] / max(n, 1),
            "train_s": round(train_s, 2),
            "val": metrics,
        }
        history.append(row)
        score = val_score(metrics)
        if score > best:
            best = score
            torch.save(
                {
                    "model": ema.module.state_dict(),
                    "epoch": epoch,
                    "val": metrics,
                    "args": vars(args),
                },
                best_path,
            )
        if args.time_budget and epoch == start_epoch + 1 and not args.resume:
            per_epoch = (time.time() - t_start) / 2
            fit = int(args.time_budget / per_epoch)
            if fit < state["epochs"]:
                state["epochs"] = max(fit, epoch + 2)
                bar.total = state["epochs"]
                print(f"time budget: {state['epochs']} epochs ({per_epoch:.1f} s each)", flush=True)
        torch.save(
            {
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "epoch": epoch,
                "epochs": state["epochs"],
                "best": best,
                "history": history,
                "args": {k: str(v) for k, v in vars(args).items()},
            },
            last_path,
        )
        (args.out / "history.json").write_text(json.dumps(history, indent=1))
        bar.update(1)
        bar.set_postfix(
            val_bacc=f"{metrics['balanced_accuracy']:.3f}", dice=f"{metrics['dice']:.3f}",
            refresh=False,
        )
        print(
            f"ep {epoch:3d} lr {row['lr']:.2e} ce {row['train_ce']:.3f} seg {row['train_seg']:.3f} "
            f"| val bacc {metrics['balanced_accuracy']:.3f} mauc {metrics['melanoma_auc']:.3f} "
            f"dice {metrics['dice']:.3f} | {train_s:.1f}s",
            flush=True,
        )
        if args.max_steps and step >= args.max_steps:
            break
        epoch += 1
    bar.close()
    return best_path


def main(argv: list[str] | None = None) -> None:
    best = train(parse_args(argv))
    print(f"best checkpoint: {best}")


if __name__ == "__main__":
    main()
