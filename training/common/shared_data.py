"""Where the training and evaluation data lives: ``../shared/data`` beside the checkout.

The data is never committed (its README forbids it); scripts and the tests that need a real
held-out record or photo read it from here. ``CARELENS_TRAINING_DATA`` points elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from backend.settings import PROJECT_ROOT

SHARED_DATA = Path(os.environ.get("CARELENS_TRAINING_DATA") or PROJECT_ROOT.parent / "shared" / "data")
