"""Rhythm: the CNN's rhythm family (normal / AF / other / noisy) plus measured evidence.

The ONNX model `ecg_rhythm` (training/ecg/rhythm_train.py, CinC 2017 single-lead strips; one
graph averaging five cross-validation fold models) runs on one lead at 250 Hz. For several leads
it runs on the first lead of RHYTHM_LEADS that holds at least 8 s of signal (lead II, the classic
rhythm strip, also the full-length strip of a printed sheet): on the 220 twelve-lead records lead
II alone did as well as averaging I, II and V1 (training/ecg/eval_rhythm_12lead.py) at a third of
the cost. A printed sheet without a full-length strip has no such lead: its column leads are
joined in time into one (rhythm_strip). Sinus rhythm is then split by the measured heart rate,
and a narrow, regular tachycardia over 150 bpm without P waves is called supraventricular
tachycardia.

A second stage (`ecg_rhythm_stack`, training/ecg/rhythm_stack_train.py) takes the CNN's class
scores and RR-interval / atrial-activity features of the same lead (rr_features.py) and gives
the family probabilities: AF is above all an RR decision, which the CNN alone got wrong more
often (held-out figures on both cards).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.inference.ecg import thresholds as th
from backend.inference.ecg.pacing import PacingEvidence
from backend.inference.ecg.preprocess import RHYTHM_FS, rhythm_input
from backend.inference.ecg.rr_features import FEATURE_NAMES, rr_features, share_within_10pct
from backend.inference.registry import LoadedModel

MODEL_NAME = "ecg_rhythm"
STACK_MODEL_NAME = "ecg_rhythm_stack"
FAMILIES = ("normal", "atrial_fibrillation", "other", "noisy")
# Lead II shows atrial activity best; lead I is what the CinC 2017 handheld device records.
RHYTHM_LEADS = ("II", "I", "V1", "V5", "aVF", "V2", "V6", "III", "aVL", "V3", "V4", "aVR")
MIN_LEAD_S = 8.0
# A sheet without a full-length strip (6x2: 5 s per lead; 3x4 without its rhythm row: 2.5 s)
# prints each column's leads one after another in time. The rhythm strip then continues the
# chosen lead with the next column's lead, leads with upright QRS first so the beats look alike
# across a join; aVR (inverted) last.
CONTINUATION_LEADS = ("II", "I", "V5", "V6", "aVF", "V4", "III", "aVL", "V3", "V2", "V1", "aVR")
JOIN_GAP_S = 0.1  # the digitiser can leave a few samples unread between two columns
MIN_PIECE_S = 1.0  # a continuation adds at least this much time


@dataclass
class RhythmModelOutput:
    probabilities: dict[str, float]  # rhythm family -> probability
    leads_used: list[str]
    saliency_lead: str
    saliency: np.ndarray  # (n,) 0..1 at 250 Hz over the saliency lead
    cnn_probabilities: dict[str, float]  # the CNN alone, before the RR stage
    rr_features: dict[str, float]  # rr_features.FEATURE_NAMES on the first rhythm lead


@dataclass
class RhythmEvidence:
    hr_bpm: float | None
    rr_irregularity: float | None  # RMSSD / mean RR
    p_wave_fraction: float | None
    qrs_ms: float | None
    n_beats: int
    # share of RR within 10 % of the median RR (rr_features): high when one regular rhythm
    # dominates even with a few premature beats, low in AF
    rr_dominant_share: float | None = None
    # longest RR / median RR: a pause (a dropped beat) when over MAX_PAUSE_RR_RATIO
    rr_longest_ratio: float | None = None
    # early (premature) beats, each followed by its pause, in an otherwise regular rhythm
    # (early_beat_indices) or every other beat (bigeminy_early_indices); p_wave_fraction leaves
    # them out
    early_beats: int = 0
    bigeminy: bool = False
    # pacemaker spikes and the beats they start (pacing.py); None where not looked for
    pacing: PacingEvidence | None = None

    @property
    def paced(self) -> bool:
        return self.pacing is not None and self.pacing.paced


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def usable_bounds(x: np.ndarray) -> tuple[int, int]:
    """[start, end) of the longest NaN-free stretch of a lead (a 3x4 sheet prints each lead
    for 2.5 s and the digitiser leaves NaN elsewhere)."""
    padded = np.concatenate([[False], np.isfinite(x), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    starts, ends = edges[::2], edges[1::2]
    if not len(starts):
        return 0, 0
    k = int(np.argmax(ends - starts))
    return int(starts[k]), int(ends[k])


def _usable_length(x: np.ndarray) -> int:
    start, end = usable_bounds(x)
    return end - start


def choose_leads(leads_250: dict[str, np.ndarray]) -> list[str]:
    long_enough = {n: _usable_length(x) for n, x in leads_250.items()}
    chosen = [n for n in RHYTHM_LEADS if long_enough.get(n, 0) >= MIN_LEAD_S * RHYTHM_FS][:1]
    return chosen or [max(long_enough, key=long_enough.get)]


@dataclass
class RhythmStrip:
    leads: list[str]  # the leads it was joined from, in time order
    start: int  # first sample, in the leads' common time frame
    signal: np.ndarray  # mV at 250 Hz, NaN-free

    @property
    def end(self) -> int:
        return self.start + len(self.signal)


def rhythm_strip(leads_250: dict[str, np.ndarray]) -> RhythmStrip:
    """The chosen lead's longest stretch; when that is under MIN_LEAD_S, continued in time by
    the leads printed after it (CONTINUATION_LEADS order), each scaled to the first piece's
    height (99th percentile of |x|) so a join does not look like a change of rhythm.

    On the 169 unpaced tuning records printed as 6x2 sheets, reading the printed samples
    exactly, the rhythm label matched the file's on 93.5 % with the first lead's 5 s alone and
    97.0 % with the joined 10 s; printed as 3x4 without the rhythm row (2.5 s per lead),
    91.7 -> 95.3 % (training/ecg/eval_photo_analysis.py measures it on photos)."""
    bounds = {n: usable_bounds(x) for n, x in leads_250.items()}
    first = choose_leads(leads_250)[0]
    start, end = bounds[first]
    names, pieces = [first], [leads_250[first][start:end]]
    height = float(np.percentile(np.abs(pieces[0]), 99)) if end > start else 0.0
    if end - start >= MIN_LEAD_S * RHYTHM_FS or height <= 0:
        return RhythmStrip(names, start, pieces[0])
    max_gap = round(JOIN_GAP_S * RHYTHM_FS)
    min_piece = round(MIN_PIECE_S * RHYTHM_FS)
    while True:
        name = next(
            (
                n
                for n in CONTINUATION_LEADS
                if n in bounds
                and n not in names
                and bounds[n][0] <= end + max_gap
                and bounds[n][1] >= end + min_piece
            ),
            None,
        )
        if name is None:
            break
        b_start, b_end = bounds[name]
        piece = leads_250[name][max(b_start, end) : b_end]
        piece_height = float(np.percentile(np.abs(piece), 99))
        if piece_height > 0:
            piece = piece * (height / piece_height)
        if b_start > end:  # bridge the unread samples with a straight line
            pieces.append(np.linspace(pieces[-1][-1], piece[0], b_start - end + 2)[1:-1])
        pieces.append(piece)
        names.append(name)
        end = b_end
    return RhythmStrip(names, start, np.concatenate(pieces))


def classify(
    model: LoadedModel, leads_250: dict[str, np.ndarray], stack: LoadedModel | None = None
) -> RhythmModelOutput:
    """leads_250: band-passed mV at 250 Hz by lead name (NaN where not recorded); `stack`, the
    second stage, turns the CNN's scores + the first rhythm lead's RR features into the family
    probabilities (without it the CNN's own)."""
    strip = rhythm_strip(leads_250)
    span = strip.signal
    out = model.run(rhythm_input(span)[None, None, :])
    cnn_logits = out["logits"][0].astype(np.float32)
    cnn_probs = _softmax(cnn_logits)
    features = rr_features(span, RHYTHM_FS)
    if stack is not None:
        stage2 = stack.run({"cnn_logits": cnn_logits[None], "features": features[None]})
        probs = _softmax(stage2["logits"][0])
    else:
        probs = cnn_probs
    top = int(np.argmax(probs))
    cam = out["cam"][0][top]
    span_n = len(span)
    cam_up = np.interp(np.arange(span_n), (np.arange(len(cam)) + 0.5) * span_n / len(cam), cam)
    cam_up = np.maximum(cam_up, 0)
    cam_up = cam_up / cam_up.max() if cam_up.max() > 0 else cam_up
    saliency = np.full(len(leads_250[strip.leads[0]]), np.nan)
    saliency[strip.start : strip.end] = cam_up
    return RhythmModelOutput(
        probabilities={f: float(p) for f, p in zip(FAMILIES, probs)},
        leads_used=strip.leads,
        saliency_lead=" + ".join(strip.leads),
        saliency=saliency,
        cnn_probabilities={f: float(p) for f, p in zip(FAMILIES, cnn_probs)},
        rr_features={n: float(v) for n, v in zip(FEATURE_NAMES, features)},
    )


def rr_irregularity(rr_s: np.ndarray) -> float | None:
    """Normalised RMSSD: RMS of successive RR differences over the mean RR."""
    if len(rr_s) < 3:
        return None
    return float(np.sqrt(np.mean(np.diff(rr_s) ** 2)) / np.mean(rr_s))


def _svt(ev: RhythmEvidence) -> bool:
    return (
        ev.hr_bpm is not None
        and ev.hr_bpm > th.SVT_MIN_HR_BPM
        and (ev.qrs_ms is None or ev.qrs_ms < th.SVT_MAX_QRS_MS)
        and ev.rr_irregularity is not None
        and ev.rr_irregularity < th.SVT_MAX_RR_IRREGULARITY
        and ev.p_wave_fraction is not None
        and ev.p_wave_fraction < th.P_ABSENT_FRACTION
    )


def sinus_by_rate(hr: float | None) -> str:
    """The sinus label by heart rate: under 60 bpm bradycardia, over 100 tachycardia."""
    if hr is None:
        return "sinus_rhythm"
    if hr < th.HR_BRADY_BPM:
        return "sinus_bradycardia"
    if hr > th.HR_TACHY_BPM:
        return "sinus_tachycardia"
    return "sinus_rhythm"


def _sinus_tachycardia(ev: RhythmEvidence) -> bool:
    return (
        ev.hr_bpm is not None
        and th.HR_TACHY_BPM < ev.hr_bpm <= th.SVT_MIN_HR_BPM
        and regular_but_for_early_beats(ev)
        and ev.p_wave_fraction is not None
        and ev.p_wave_fraction >= th.P_PRESENT_FRACTION
    )


def dominant_rr_share(out: RhythmModelOutput) -> float | None:
    """Share of RR within 10 % of the median on the rhythm lead; None under MIN_BEATS beats."""
    if out.rr_features["hr_bpm"] == 0.0:  # fewer than MIN_BEATS beats: no RR features
        return None
    return out.rr_features["rr_within_10pct"]


def longest_rr_ratio(rr_s: np.ndarray) -> float | None:
    """Longest RR over the median RR; None under 3 intervals."""
    if len(rr_s) < 3:
        return None
    return float(np.max(rr_s) / np.median(rr_s))


def early_beat_indices(rr_s: np.ndarray) -> list[int]:
    """Beats that come early, each followed by its pause (thresholds.PREMATURE_RR_RATIO and
    neighbours), in an otherwise regular rhythm, as indices into the beats whose RR intervals
    `rr_s` are (interval i ends at beat i + 1). Empty when there are none, under 5 intervals, or
    when the intervals outside those pairs are not regular (then the irregularity is not a few
    early beats)."""
    rr = np.asarray(rr_s, dtype=np.float64)
    if len(rr) < 5:
        return []
    usual = float(np.median(rr))
    low, high = th.PREMATURE_PAIR_SPAN
    in_pair = np.zeros(len(rr), dtype=bool)
    early_beats, i = [], 0
    while i + 1 < len(rr):
        early, pause = rr[i], rr[i + 1]
        if (
            early <= th.PREMATURE_RR_RATIO * usual
            and pause >= th.PAUSE_RR_RATIO * usual
            and low * usual <= early + pause <= high * usual
        ):
            in_pair[i : i + 2] = True
            early_beats.append(i + 1)
            i += 2
        else:
            i += 1
    rest = rr[~in_pair]
    if not early_beats or len(rest) < 4:
        return []
    return early_beats if share_within_10pct(rest, usual) >= th.UNDERLYING_REGULAR_SHARE else []


def bigeminy_early_indices(rr_s: np.ndarray) -> list[int]:
    """Every other beat early, each followed by its pause (thresholds.BIGEMINY_MIN_PAIRS), as
    indices like early_beat_indices'; empty when the intervals do not alternate throughout."""
    rr = np.asarray(rr_s, dtype=np.float64)
    if len(rr) < 2 * th.BIGEMINY_MIN_PAIRS:
        return []
    for first_short in (0, 1):
        short, long_ = rr[first_short::2], rr[1 - first_short :: 2]
        # each short interval against the long ones on either side of it
        before = np.r_[np.inf, long_][first_short : first_short + len(short)]
        after = np.r_[long_, np.inf][first_short : first_short + len(short)]
        if (
            np.all(short <= th.PREMATURE_RR_RATIO * np.minimum(before, after))
            and share_within_10pct(long_, float(np.median(long_))) >= th.UNDERLYING_REGULAR_SHARE
        ):
            return [first_short + 2 * k + 1 for k in range(len(short))]
    return []


def regular_but_for_early_beats(ev: RhythmEvidence) -> bool:
    """One dominant RR interval (DOMINANT_RR_SHARE), or early beats each followed by its pause in
    an otherwise regular rhythm (early_beat_indices): two early beats in 10 s already leave under
    DOMINANT_RR_SHARE of the intervals at the usual one. Not bigeminy: with every other beat
    early the strip shows no usual interval, and the rhythm rules leave it to the classifier."""
    return (ev.early_beats > 0 and not ev.bigeminy) or (
        ev.rr_dominant_share is not None and ev.rr_dominant_share >= th.DOMINANT_RR_SHARE
    )


def frequent_early_beats(ev: RhythmEvidence) -> bool:
    """At least FREQUENT_EARLY_BEAT_SHARE of the beats came early."""
    return ev.early_beats > 0 and ev.early_beats >= th.FREQUENT_EARLY_BEAT_SHARE * ev.n_beats


def sinus_with_early_beats(ev: RhythmEvidence) -> bool:
    """P waves before the beats and one dominant beat interval, broken by a few premature
    (ectopic) beats and the pauses after them, up to SVT_MIN_HR_BPM. A longer pause (a dropped
    beat: second-degree AV block, sinus pause) is not this and stays "other"."""
    return (
        ev.p_wave_fraction is not None
        and ev.p_wave_fraction >= th.SINUS_P_FRACTION
        and regular_but_for_early_beats(ev)
        and ev.rr_longest_ratio is not None
        and ev.rr_longest_ratio <= th.MAX_PAUSE_RR_RATIO
        and (ev.hr_bpm is None or ev.hr_bpm <= th.SVT_MIN_HR_BPM)
    )


def final_rhythm(family: str, ev: RhythmEvidence) -> str:
    """The contract's rhythm label from the rhythm family and the measured evidence.

    An "other" family is never turned into AF here: with the RR second stage in the family, a
    rule that did so (AF runner-up >= 0.25, irregular RR, no P waves) was right on 1 of 7 CinC
    2017 validation strips it changed and 1 of 10 held-out ones. Such a strip stays "other" and
    is reported as uncertain (explain.agreement).

    Pacemaker spikes starting most beats (pacing.py) make it a paced rhythm whatever the family:
    the CNN never saw a paced ECG, and the spikes are the pacemaker's own signature."""
    if ev.paced:
        return "paced_rhythm"
    if family in ("normal", "other") and _svt(ev):
        return "supraventricular_tachycardia"
    if family == "normal":
        return sinus_by_rate(ev.hr_bpm)
    if family == "other":
        irr, pf = ev.rr_irregularity, ev.p_wave_fraction
        if irr is not None and pf is not None:
            regular_sinus = pf >= th.SINUS_P_FRACTION and irr < th.RR_REGULAR
            if regular_sinus or sinus_with_early_beats(ev):
                return sinus_by_rate(ev.hr_bpm)
            if _sinus_tachycardia(ev):
                return "sinus_tachycardia"
    return family
