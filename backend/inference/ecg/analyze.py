"""One ECG record -> the contract's ECG result: rhythm, intervals, explanation, urgency, trace.

Steps: signal quality (refuse what cannot be read) -> band-pass -> delineation at 500 Hz
(R peaks, P/QRS/T per beat, global intervals) -> rhythm CNN at 250 Hz on the rhythm leads ->
label from the CNN's family and the measured evidence -> reasons in words, checked against the
label -> urgency from thresholds.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backend.inference.ecg import delineate as dl
from backend.inference.ecg import pacing
from backend.inference.ecg import rhythm as rh
from backend.inference.ecg import thresholds as th
from backend.inference.ecg.explain import agreement, explain
from backend.inference.ecg.preprocess import (
    DELINEATION_FS,
    RHYTHM_FS,
    bandpass,
    resample,
    standard_lead_matrix,
)
from backend.inference.ecg.record import STANDARD_LEADS, EcgRecord
from backend.inference.errors import UnusableInputError
from backend.inference.registry import ModelRegistry, default_registry
from backend.inference.result import make_result

MIN_DURATION_S = 5.0
MAX_DURATION_S = 60.0  # a long (Holter) recording: its first minute is analysed, and we say so


def _quality(record: EcgRecord) -> tuple[list[str], list[str]]:
    """(issues, usable lead names); raises UnusableInputError for a record too poor to read."""
    from backend.inference.ecg.quality import assess_signal_quality

    q = assess_signal_quality(record)
    q.raise_if_unusable()
    return list(q.issues), list(q.usable_leads)


def _round_trace(x: np.ndarray) -> list[float | None]:
    """3-decimal floats for the result page plot, None where the lead was not recorded."""
    rounded = np.round(np.asarray(x, dtype=np.float64), 3)
    finite = np.isfinite(rounded)
    if finite.all():
        return rounded.tolist()
    out = rounded.astype(object)
    out[~finite] = None
    return out.tolist()


def interval_flags(
    intervals: dict[str, Any], sex: str | None
) -> tuple[dict[str, str], dict[str, Any]]:
    """Per-interval flag and the normal ranges used (sex-specific QTc upper limit)."""
    flags: dict[str, str] = {}
    hr, pr, qrs, qtc = (intervals.get(k) for k in ("hr_bpm", "pr_ms", "qrs_ms", "qtc_ms"))
    sex_key = (sex or "").strip().upper()[:1]
    qtc_upper = th.QTC_UPPER_MS.get(sex_key, th.QTC_UPPER_UNKNOWN_SEX_MS)
    if hr is not None:
        flags["hr"] = (
            "low" if hr < th.HR_BRADY_BPM else "high" if hr > th.HR_TACHY_BPM else "normal"
        )
    if pr is not None:
        flags["pr"] = (
            "short" if pr < th.PR_NORMAL_MS[0] else "long" if pr > th.PR_NORMAL_MS[1] else "normal"
        )
    if qrs is not None:
        flags["qrs"] = (
            "wide"
            if qrs >= th.QRS_WIDE_MS
            else "borderline"
            if qrs > th.QRS_NORMAL_MAX_MS
            else "normal"
        )
    if qtc is not None:
        if qtc > th.QTC_URGENT_MS:
            flags["qtc"] = "markedly_prolonged"
        elif qtc >= qtc_upper:
            flags["qtc"] = "prolonged"
        elif sex_key not in th.QTC_UPPER_MS and qtc >= min(th.QTC_UPPER_MS.values()):
            flags["qtc"] = "borderline"
        elif qtc <= th.QTC_SHORT_MS:
            flags["qtc"] = "short"
        else:
            flags["qtc"] = "normal"
    ranges = {
        "hr_bpm": [th.HR_BRADY_BPM, th.HR_TACHY_BPM],
        "pr_ms": list(th.PR_NORMAL_MS),
        "qrs_ms": [None, th.QRS_NORMAL_MAX_MS],
        "qtc_ms": [th.QTC_SHORT_MS, qtc_upper],
    }
    return flags, ranges


CLIPPED_NOTE = f"only the first {MAX_DURATION_S:.0f} s of the recording were analysed"
NOISY_NOTE = "the rhythm classifier found the recording too noisy"
# Held-out rendered phone photos (training/ecg/eval_photo_analysis_results.txt): QRS, QT and
# QTc within 20 ms of the file on 95-98 % of sheets; QTc up to 58 ms over at 114-123 bpm on tuning.
PHOTO_INTERVALS_NOTE = (
    "the intervals were measured on a digitised photo; on test photos they came within 20 ms of "
    "the original file 19 times in 20, less close at fast heart rates; confirm them on the "
    "original ECG or its file"
)
# Held-out 12-lead sheets saved as image PDFs (eval_photo_analysis --modes pdf): QRS, QT and QTc
# within 20 ms of the file on 98-100 %; watches' PDFs of CinC 2017 strips (eval_watch_pdf): of
# the strip's own samples on 92-96 % (training/ecg/eval_watch_pdf_results.txt).
PDF_INTERVALS_NOTE = (
    "the intervals were measured on an ECG print read from a PDF; on test PDFs they came within "
    "20 ms of the original recording at least 9 times in 10; confirm them on the original ECG "
    "file if there is one"
)


def _clear_of_photo_error(qtc_ms: float | None, hr: float | None) -> bool:
    """A QTc from a digitised print is over the urgent limit by more than a photo misreads it."""
    return (
        qtc_ms is not None
        and hr is not None
        and qtc_ms > th.QTC_URGENT_MS + th.PHOTO_QTC_URGENT_MARGIN_MS
        and hr <= th.PHOTO_QTC_URGENT_MAX_HR_BPM
    )


def _urgency(
    label: str,
    hr: float | None,
    flags: dict[str, str],
    *,
    from_photo: bool,
    frequent_early_beats: bool = False,
    qtc_ms: float | None = None,
) -> str:
    if hr is not None and (hr < th.HR_URGENT_LOW_BPM or hr > th.HR_URGENT_HIGH_BPM):
        return "urgent"
    if label == "paced_rhythm":
        # A wide QRS and a long QT are what ventricular pacing does (the QTc flag alone would
        # call 3 of LUDB's 8 paced records urgent); at home only the rate speaks of the
        # pacemaker, and the explanation names the symptoms not to wait with.
        return "soon" if frequent_early_beats else "routine"
    if flags.get("qtc") == "markedly_prolonged":
        return "urgent" if not from_photo or _clear_of_photo_error(qtc_ms, hr) else "soon"
    if label in ("atrial_fibrillation", "atrial_flutter", "supraventricular_tachycardia", "other"):
        return "soon"
    if flags.get("qrs") == "wide" or flags.get("qtc") == "prolonged" or frequent_early_beats:
        return "soon"
    return "routine"


def analyze_ecg_record(
    record: EcgRecord,
    registry: ModelRegistry | None = None,
    *,
    age: int | None = None,
    sex: str | None = None,
) -> dict[str, Any]:
    """The contract's ECG result for one record (see CONTRACT.md); UnusableInputError when the
    record is too poor or too short to read."""
    registry = registry or default_registry()
    if record.duration_s < MIN_DURATION_S:
        raise UnusableInputError(
            "The ECG is %(duration).1f s long; at least %(minimum).0f s are needed to judge the "
            "rhythm.",
            params={"duration": record.duration_s, "minimum": MIN_DURATION_S},
            extra={"quality": {"ok": False, "issues": ["recording too short"]}},
        )
    if record.duration_s > MAX_DURATION_S:
        n_keep = int(MAX_DURATION_S * record.fs)
        record = EcgRecord(
            signal=record.signal[:n_keep],
            fs=record.fs,
            lead_names=list(record.lead_names),
            source=record.source,
            meta=record.meta,
        )
        clipped_note = [CLIPPED_NOTE]
    else:
        clipped_note = []
    issues, usable = _quality(record)
    issues = [*record.meta.get("assumptions", []), *issues, *clipped_note]
    signal = np.asarray(record.signal, dtype=np.float64).copy()
    for j, name in enumerate(record.lead_names):
        if name not in usable:
            signal[:, j] = np.nan
    mat, present = standard_lead_matrix(signal, record.lead_names)
    if not present.any():  # non-standard lead names only (a single-lead device): use them as lead I
        finite = [j for j in range(signal.shape[1]) if np.isfinite(signal[:, j]).any()]
        if not finite:
            raise UnusableInputError(
                "No readable ECG lead was found.",
                extra={"quality": {"ok": False, "issues": issues}},
            )
        mat[:, 0] = signal[:, finite[0]]
        present[0] = True
    lead_names = [STANDARD_LEADS[k] for k in np.flatnonzero(present)]

    filt_500 = bandpass(resample(mat, record.fs, DELINEATION_FS), DELINEATION_FS)
    d = dl.delineate(registry.get(dl.MODEL_NAME), filt_500)
    measured = dl.global_intervals(d)
    rr = dl.rr_intervals_s(d)
    mean_rr = float(rr.mean()) if len(rr) else None
    qtc_b, qtc_f = dl.corrected_qt(measured["qt_ms"], mean_rr)
    intervals = {
        "hr_bpm": measured["hr_bpm"],
        "pr_ms": measured["pr_ms"],
        "qrs_ms": measured["qrs_ms"],
        "qt_ms": measured["qt_ms"],
        "qtc_ms": qtc_f,  # thresholds.QTC_FORMULA
    }
    intervals = {k: (round(v, 1) if v is not None else None) for k, v in intervals.items()}

    filt_250 = bandpass(resample(mat, record.fs, RHYTHM_FS), RHYTHM_FS)
    leads_250 = {STANDARD_LEADS[k]: filt_250[:, k] for k in np.flatnonzero(present)}
    rhythm_model = registry.get(rh.MODEL_NAME)
    cnn = rh.classify(rhythm_model, leads_250, registry.get(rh.STACK_MODEL_NAME))
    family = max(cnn.probabilities, key=cnn.probabilities.get)
    early_indices = rh.early_beat_indices(rr)
    bigeminy_indices = [] if early_indices else rh.bigeminy_early_indices(rr)
    early_indices = early_indices or bigeminy_indices
    from_photo = record.source == "photo"
    # Spikes are looked for on the samples as read: the band-pass removes them. Not on a
    # digitised photo, where a printed spike is a thin line the digitiser follows as the trace.
    spikes_s = (
        np.zeros(0) if from_photo else pacing.spike_times_s(signal, record.fs, record.lead_names)
    )
    qrs_onsets_s = np.array([b.qrs_on for b in d.beats], dtype=np.float64) / DELINEATION_FS
    evidence = rh.RhythmEvidence(
        hr_bpm=measured["hr_bpm"],
        rr_irregularity=rh.rr_irregularity(rr),
        p_wave_fraction=dl.p_wave_fraction(d, skip_beats=early_indices),
        qrs_ms=measured["qrs_ms"],
        n_beats=len(d.beats),
        rr_dominant_share=rh.dominant_rr_share(cnn),
        rr_longest_ratio=rh.longest_rr_ratio(rr),
        early_beats=len(early_indices),
        bigeminy=bool(bigeminy_indices),
        pacing=pacing.pacing_evidence(spikes_s, qrs_onsets_s),
    )
    label = rh.final_rhythm(family, evidence)
    if label in ("atrial_fibrillation", "supraventricular_tachycardia"):
        intervals["pr_ms"] = None  # no sinus P waves: a PR interval would be a guess
    flags, ranges = interval_flags(intervals, sex)
    p = cnn.probabilities
    # The family the label stands for; its probability is reported under the label's own name
    # (normal -> sinus_bradycardia at 50 bpm), so probabilities[label] is the confidence.
    if label == "paced_rhythm":
        # the label is the spikes', not the model's: its confidence is the share of beats a
        # spike started, and the model's families stay as they are
        source, sinus_override = None, False
        confidence = evidence.pacing.paced_beats / evidence.pacing.n_beats
    elif label.startswith("sinus_") and family == "other":
        # sinus by the evidence (P waves, regular RR) though the CNN found the beats unusual:
        # it is sure it is neither AF nor noise, the evidence decides sinus
        source, confidence, sinus_override = "normal", p["normal"] + p["other"], True
    else:
        source, confidence, sinus_override = family, p[family], False
    probabilities = {(label if fam == source else fam): v for fam, v in p.items()}
    agree = agreement(label, evidence)
    urgency = _urgency(
        label,
        intervals["hr_bpm"],
        flags,
        from_photo=from_photo,
        frequent_early_beats=rh.frequent_early_beats(evidence),
        qtc_ms=intervals["qtc_ms"],
    )
    if from_photo:  # a PDF print is digitised like a photo
        issues = [*issues, PDF_INTERVALS_NOTE if record.is_pdf_print else PHOTO_INTERVALS_NOTE]
    explanation_en, explanation_ko = explain(
        label, evidence, intervals, flags, agree, confidence, urgency, sinus_override=sinus_override
    )
    uncertain = (not agree.agrees) or confidence < th.MIN_CONFIDENCE
    if label == "noisy":
        issues = [*issues, NOISY_NOTE]

    r_peaks_s = [round(float(r) / DELINEATION_FS, 3) for r in d.r_peaks]
    trace = {
        "fs": RHYTHM_FS,
        "lead_names": lead_names,
        "signals": [_round_trace(leads_250[n]) for n in lead_names],
        "r_peaks_s": r_peaks_s,
        "saliency_lead": cnn.saliency_lead,
        "saliency": _round_trace(cnn.saliency),
    }
    if evidence.paced:  # the band-pass took the spikes out of the drawn trace: mark them
        trace["pacing_spikes_s"] = [round(float(t), 3) for t in spikes_s]
    model_ref = registry.get(rh.MODEL_NAME).model_ref()
    return make_result(
        kind="ecg",
        label=label,
        probabilities=probabilities,
        confidence=confidence,
        urgency=urgency,
        model=model_ref,
        quality_issues=issues,
        quality_ok=label != "noisy",
        explanation=explanation_en,
        explanation_ko=explanation_ko,
        rhythm=label,
        uncertain=uncertain,
        intervals=intervals,
        intervals_detail={
            "qtc_formula": th.QTC_FORMULA,
            "qtc_bazett_ms": round(qtc_b, 1) if qtc_b is not None else None,
            "qtc_fridericia_ms": intervals["qtc_ms"],
            "rr_irregularity": evidence.rr_irregularity,
            "p_wave_fraction": evidence.p_wave_fraction,
            "n_beats": evidence.n_beats,
            "early_beats": evidence.early_beats,
            "bigeminy": evidence.bigeminy,
            "pacing": evidence.pacing.as_detail(),
            "normal_ranges": ranges,
            "flags": flags,
            "sex_used_for_qtc": (sex or "").strip().upper()[:1] or None,
            "age": age,
        },
        leads=lead_names,
        rhythm_leads=cnn.leads_used,
        # ISO 8601; without an offset when the file gives the recorder's local clock only
        recorded_at=record.recorded_at.isoformat() if record.recorded_at else None,
        models={
            "rhythm": model_ref,
            "rhythm_rr_stage": registry.get(rh.STACK_MODEL_NAME).model_ref(),
            "delineation": registry.get(dl.MODEL_NAME).model_ref(),
        },
        trace=trace,
    )
