"""Training-curve images beside a model card when an ensemble grows.

A card's <name>.training.png shows the runs trained for that version. When a new run is averaged
with an already shipped model, the shipped model's curves would be overwritten by the new run's
plot, and its history json is usually long gone; so its image is kept under its version.
"""

from __future__ import annotations

from pathlib import Path


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
