"""Real records and photos the tests read from ../shared/data, where CI finds them.

The data's README forbids committing any of it, so the tests name the files instead of copying
them. Each photo whose answer a test checks is on the test side of that model's split (by
lesion_id or group_id): never seen in training, gate fitting or threshold tuning.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from training.common.shared_data import SHARED_DATA


def held_out(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.fail(
            f"{path} is missing. These tests read real records from the project's data folder "
            "(../shared/data beside the checkout); set CARELENS_TRAINING_DATA to where it lives.",
            pytrace=False,
        )
    return path


# HAM10000 (Tschandl, Rosendahl & Kittler, Sci Data 5:180161, 2018; CC BY-NC 4.0),
# histopathology-confirmed, 200x150. The first three are on the skin model's test side; the
# last two on the ear gate's test side (its skin negatives are split by lesion too).
SKIN_NV = held_out("skin/images/ISIC_0024356.jpg")
SKIN_BCC = held_out("skin/images/ISIC_0024360.jpg")
SKIN_MEL = held_out("skin/images/ISIC_0024516.jpg")
SKIN_NV_CAMERA = held_out("skin/images/ISIC_0025177.jpg")  # the fake camera's skin photo
SKIN_NOT_EARDRUM = held_out("skin/images/ISIC_0033581.jpg")  # never seen by the ear gate either

# Chile "Ear Imagery" (Viscaino et al., PLoS ONE 15(3):e0229226, 2020; CC0) and Ohio OtoMatch
# (Camalan et al., PLoS ONE 15(5):e0232776, 2020; CC BY 4.0), test side of the group split.
EARDRUM_NORMAL = held_out("ear/images/chl_23a425f8be7b.jpg")
EARDRUM_EARWAX = held_out("ear/images/chl_aea4a6e3266e.jpg")
EARDRUM_EFFUSION = held_out("ear/images/ohi_176f6f6ae704.jpg")
EARDRUM_CAMERA = held_out("ear/images/chl_09dadda32f02.jpg")  # normal; fed to the fake camera
EARDRUMS = (EARDRUM_NORMAL, EARDRUM_EARWAX, EARDRUM_EFFUSION)

# LUDB record 1 (Kalyakulina et al., PhysioNet 2021, doi:10.13026/eegm-h675; ODC-By 1.0): twelve
# leads at 500 Hz, 10 s, written by wfdb (format 16, 1000 adu/mV). The readers and the quality
# check read it; no model's answer on it is asserted (it is on the delineator's training side).
LUDB_001 = held_out("ecg/records/ludb/ludb_001.hea")
