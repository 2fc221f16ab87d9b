"""The one normalised ECG record every reader, the digitiser and the analysis share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

STANDARD_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


@dataclass
class EcgRecord:
    """signal: (n_samples, n_leads) float64 in millivolts, NaN where a lead was not recorded."""

    signal: np.ndarray
    fs: float
    lead_names: list[str]
    source: str = "file"  # "file:wfdb", "file:edf", "photo", ...
    meta: dict = field(default_factory=dict)
    # When the device recorded it, as the file says (naive: the recorder's local clock).
    recorded_at: datetime | None = None

    @property
    def duration_s(self) -> float:
        return self.signal.shape[0] / self.fs

    @property
    def is_pdf_print(self) -> bool:
        """Digitised from a print saved as PDF (dispatch records the page it was found on)."""
        return self.source == "photo" and "pdf_page" in self.meta

    def lead(self, name: str) -> np.ndarray:
        return self.signal[:, self.lead_names.index(name)]
