"""Model cards when an ensemble grows: what carries over from the previous card.

A new run averaged with an already shipped model (or with the members of a shipped ensemble,
see onnx_members.flatten_members) cannot re-create how the shipped model was trained: its history
json is usually long gone. So its training record is carried from the previous card, and its
training-curve image (<name>.training.png, which the new runs' plot replaces) is kept under its
version.
"""

from __future__ import annotations

from pathlib import Path

from training.common.onnx_members import flattened_from, members_of


def carried_training(old_card: dict, onnx_path: Path) -> list[dict]:
    """The previous card's training record(s) when its model is in the ensemble at onnx_path (one
    of its members, or an ensemble it was taken apart from): a card that already lists members
    gives them all, a single model's record gets its sha256. When only some of the previous
    ensemble's members were kept, the records that name one of them (by sha256); else []."""
    if "training" not in old_card:
        return []
    training = old_card["training"]
    members = members_of(onnx_path)
    if old_card.get("sha256") in members + flattened_from(onnx_path):
        return training.get("members", [{**training, "sha256": old_card["sha256"]}])
    # an ensemble rebuilt from some of the previous one's members: those whose record names them
    return [m for m in training.get("members", []) if m.get("sha256") in members]


def keep_earlier_curves(card_path: Path, version: str | None) -> str | None:
    """Copy <name>.training.png to <name>.training.<version>.png (once) and return that file's
    name, or None when there is no image to keep."""
    current = card_path.with_suffix(".training.png")
    kept = card_path.with_suffix(f".training.{version or 'earlier'}.png")
    if not kept.exists():
        if not current.exists():
            return None
        kept.write_bytes(current.read_bytes())
    return kept.name
