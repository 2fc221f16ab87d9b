"""Progress bars for the training scripts (tqdm): how far a run is and how long is left. Live on a
terminal; in a nohup log one update at most every 30 s, so the log stays readable."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(total: int, desc: str, *, initial: int = 0, unit: str = "epoch") -> tqdm:
    live = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr,
                mininterval=0.5 if live else 30.0, dynamic_ncols=live, ascii=not live)
