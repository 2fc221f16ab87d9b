"""Plain-language reasons for an ECG result, in English and Korean, computed from the signal.

The reasons (RR irregularity, P waves, heart rate, QRS width, QTc) are measured independently of
the rhythm CNN. `agreement` checks that they support the CNN's label; when they do not, the
result says it is uncertain instead of presenting a confident label.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.inference.ecg import thresholds as th
from backend.inference.ecg.rhythm import (
    RhythmEvidence,
    frequent_early_beats,
    regular_but_for_early_beats,
)

RHYTHM_NAMES = {
    "sinus_rhythm": ("normal sinus rhythm", "정상 동리듬"),
    "sinus_bradycardia": (
        "sinus bradycardia (a slow regular heartbeat)",
        "동서맥(느리지만 규칙적인 심박)",
    ),
    "sinus_tachycardia": (
        "sinus tachycardia (a fast regular heartbeat)",
        "동빈맥(빠르지만 규칙적인 심박)",
    ),
    "atrial_fibrillation": ("atrial fibrillation", "심방세동"),
    "atrial_flutter": ("atrial flutter", "심방조동"),
    "supraventricular_tachycardia": ("supraventricular tachycardia", "상심실성 빈맥"),
    "paced_rhythm": (
        "a paced rhythm (a pacemaker sets the heartbeat)",
        "심박조율 리듬(인공심박동기가 심박을 만듦)",
    ),
    "other": (
        "a rhythm other than normal sinus rhythm or atrial fibrillation",
        "정상 동리듬이나 심방세동이 아닌 다른 리듬",
    ),
    "noisy": (
        "a recording too noisy to judge the rhythm",
        "리듬을 판단하기 어려울 만큼 잡음이 많은 기록",
    ),
}


@dataclass
class Agreement:
    agrees: bool
    conflicts_en: list[str] = field(default_factory=list)
    conflicts_ko: list[str] = field(default_factory=list)


def agreement(label: str, ev: RhythmEvidence) -> Agreement:
    """Do the signal measurements support the classifier's label?"""
    irr, pf = ev.rr_irregularity, ev.p_wave_fraction
    a = Agreement(True)
    if label == "atrial_fibrillation":
        if (
            irr is not None
            and irr < th.RR_REGULAR
            and pf is not None
            and pf >= th.P_PRESENT_FRACTION
        ):
            a.agrees = False
            a.conflicts_en.append(
                "the beats are regular and P waves are present, which is not typical of atrial fibrillation"
            )
            a.conflicts_ko.append(
                "심박이 규칙적이고 P파가 보여 심방세동의 전형적인 모습이 아닙니다"
            )
        elif ev.bigeminy:
            a.agrees = False
            a.conflicts_en.append(
                "the beat intervals alternate short and long (bigeminy), a regular pattern that"
                " points to early beats rather than atrial fibrillation"
            )
            a.conflicts_ko.append(
                "심박 간격이 짧고 긴 것을 번갈아 반복하여(이단맥), 심방세동보다는 조기 박동에"
                " 가깝습니다"
            )
        elif ev.early_beats:
            a.agrees = False
            a.conflicts_en.append(
                "most beats come at one regular interval, and the irregular ones are early beats"
                " each followed by a pause, which points to early beats rather than atrial"
                " fibrillation"
            )
            a.conflicts_ko.append(
                "대부분의 심박이 일정한 간격으로 오고 불규칙한 심박은 뒤에 쉼이 따르는 조기"
                " 박동이어서, 심방세동보다는 조기 박동에 가깝습니다"
            )
    elif label == "other":
        if (
            irr is not None
            and irr > th.RR_IRREGULAR
            and pf is not None
            and pf < th.P_ABSENT_FRACTION
            and not _early_beats(ev)
        ):
            a.agrees = False
            a.conflicts_en.append(
                "the beats are irregularly irregular with no P waves before them, as in atrial"
                " fibrillation"
            )
            a.conflicts_ko.append(
                "심박이 불규칙하게 불규칙하고 그 앞에 P파가 없어 심방세동과 비슷합니다"
            )
    elif label.startswith("sinus_"):
        if pf is not None and pf < th.P_ABSENT_FRACTION:
            a.agrees = False
            a.conflicts_en.append(
                "P waves were not found before most beats, which a sinus rhythm should show"
            )
            a.conflicts_ko.append(
                "대부분의 심박 앞에서 P파가 보이지 않는데, 동리듬이라면 보여야 합니다"
            )
        # irregular beyond 1.5x RR_IRREGULAR, unless a few early beats in a regular rhythm
        if irr is not None and irr > th.RR_IRREGULAR * 1.5 and not _early_beats(ev):
            a.agrees = False
            a.conflicts_en.append(f"the beat-to-beat intervals vary a lot ({irr:.0%})")
            a.conflicts_ko.append(f"심박 간격의 변동이 큽니다({irr:.0%})")
    return a


def _early_beats(ev: RhythmEvidence) -> bool:
    """Irregular RR from a few early or late beats in an otherwise regular rhythm."""
    return (
        ev.rr_irregularity is not None
        and ev.rr_irregularity > th.RR_IRREGULAR
        and regular_but_for_early_beats(ev)
    )


def _early_beats_phrase(n: int) -> tuple[str, str]:
    if n == 1:
        return "an early beat followed by a pause", "뒤에 쉼이 따르는 조기 박동 1회"
    return (
        f"{n} early beats, each followed by a pause",
        f"뒤에 쉼이 따르는 조기 박동 {n}회",
    )


_PACING_CHAMBERS = {
    "ventricular": ("ventricular pacing", "심실 조율"),
    "atrial": ("atrial pacing", "심방 조율"),
    "dual": ("atrial and ventricular pacing", "심방·심실 조율"),
}


def _fmt(v: float | None, unit: str) -> str:
    return f"{v:.0f} {unit}" if v is not None else "not measurable"


def reasons(
    label: str, ev: RhythmEvidence, intervals: dict, flags: dict
) -> tuple[list[str], list[str]]:
    """Signal-derived reasons (en, ko)."""
    en, ko = [], []
    if ev.paced:
        pacing = ev.pacing
        chambers_en, chambers_ko = _PACING_CHAMBERS[pacing.chambers]
        en.append(
            f"pacemaker spikes before {pacing.paced_beats} of {pacing.n_beats} beats"
            f" ({chambers_en})"
        )
        ko.append(
            f"박동 {pacing.n_beats}회 중 {pacing.paced_beats}회 앞에 인공심박동기 자극"
            f" 신호({chambers_ko})"
        )
    if ev.hr_bpm is not None:
        en.append(f"heart rate {ev.hr_bpm:.0f} beats per minute")
        ko.append(f"심박수 분당 {ev.hr_bpm:.0f}회")
    if ev.rr_irregularity is not None:
        pct = ev.rr_irregularity * 100
        dominant = ev.rr_dominant_share
        if ev.bigeminy:
            en.append(
                f"every other beat comes early, each followed by a pause (bigeminy, a regular"
                f" pattern of irregular beats; variation {pct:.0f}%)"
            )
            ko.append(
                f"한 박동 걸러 하나씩 조기 박동이 오고 그 뒤에 쉼이 따름(이단맥, 불규칙한 박동의"
                f" 규칙적인 반복; 변동 {pct:.0f}%)"
            )
        elif ev.early_beats and label != "atrial_fibrillation":
            beats_en, beats_ko = _early_beats_phrase(ev.early_beats)
            if ev.rr_irregularity > th.RR_IRREGULAR:
                en.append(
                    f"a regular underlying rhythm interrupted by {beats_en} (variation {pct:.0f}%)"
                )
                ko.append(f"규칙적인 기본 리듬에 {beats_ko}가 섞임(변동 {pct:.0f}%)")
            else:
                en.append(f"regular RR intervals apart from {beats_en} (variation {pct:.0f}%)")
                ko.append(f"{beats_ko}를 빼면 규칙적인 RR 간격(변동 {pct:.0f}%)")
        elif _early_beats(ev) and label != "atrial_fibrillation":
            en.append(
                f"a regular underlying rhythm ({dominant:.0%} of beat intervals within 10% of the"
                f" usual one) interrupted by early or late beats (variation {pct:.0f}%)"
            )
            ko.append(
                f"규칙적인 기본 리듬(심박 간격의 {dominant:.0%}가 평소 간격의 10% 이내)에"
                f" 이르거나 늦은 박동이 섞임(변동 {pct:.0f}%)"
            )
        elif ev.rr_irregularity > th.RR_IRREGULAR:
            # AF's words, "irregularly irregular", only where AF is meant: an AF label (over early
            # beats the agreement check says what speaks against it) or beats without P waves.
            # With P waves the irregularity is early beats or a changing sinus rate (a run of
            # bigeminy inside a longer record is one such pattern).
            af_words = not _early_beats(ev) and (
                label == "atrial_fibrillation"
                or ev.p_wave_fraction is None
                or ev.p_wave_fraction < th.P_PRESENT_FRACTION
            )
            if af_words:
                en.append(f"irregularly irregular RR intervals (variation {pct:.0f}%)")
                ko.append(f"불규칙하게 불규칙한 RR 간격(변동 {pct:.0f}%)")
            else:
                en.append(f"irregular RR intervals (variation {pct:.0f}%)")
                ko.append(f"불규칙한 RR 간격(변동 {pct:.0f}%)")
        elif ev.rr_irregularity < th.RR_REGULAR:
            en.append(f"regular RR intervals (variation {pct:.0f}%)")
            ko.append(f"규칙적인 RR 간격(변동 {pct:.0f}%)")
        else:
            en.append(f"mildly irregular RR intervals (variation {pct:.0f}%)")
            ko.append(f"약간 불규칙한 RR 간격(변동 {pct:.0f}%)")
    if ev.p_wave_fraction is not None:
        if ev.p_wave_fraction >= th.P_PRESENT_FRACTION:
            # early beats are left out of the P-wave count (delineate.p_wave_fraction)
            of_en, of_ko = (
                ("the other QRS complexes", "조기 박동을 뺀 QRS 파형")
                if ev.early_beats
                else ("QRS complexes", "QRS 파형")
            )
            en.append(f"P waves before {ev.p_wave_fraction:.0%} of {of_en}")
            ko.append(f"{of_ko}의 {ev.p_wave_fraction:.0%} 앞에 P파가 있음")
            fast = ev.hr_bpm is not None and ev.hr_bpm > th.HR_TACHY_BPM
            if fast and intervals.get("pr_ms") is None and label.startswith("sinus_"):
                # P waves found on the slowed record only (delineate.SLOWED_RATE_BPM)
                en.append(
                    "at this rate the P waves sit too close to the T waves before them to measure"
                    " the PR interval"
                )
                ko.append("이 심박수에서는 P파가 앞의 T파에 너무 가까워 PR 간격은 재지 않음")
        else:
            en.append("no consistent P waves before QRS complexes")
            ko.append("QRS 파형 앞에 일정한 P파가 없음")
    if flags.get("qrs") == "wide":
        en.append(f"wide QRS complexes ({intervals['qrs_ms']:.0f} ms)")
        ko.append(f"넓은 QRS 파형({intervals['qrs_ms']:.0f} ms)")
    if flags.get("qtc") in ("prolonged", "markedly_prolonged"):
        en.append(f"long corrected QT interval (QTc {intervals['qtc_ms']:.0f} ms)")
        ko.append(f"긴 교정 QT 간격(QTc {intervals['qtc_ms']:.0f} ms)")
    if flags.get("pr") == "long":
        en.append(f"long PR interval ({intervals['pr_ms']:.0f} ms)")
        ko.append(f"긴 PR 간격({intervals['pr_ms']:.0f} ms)")
    return en, ko


def explain(
    label: str,
    ev: RhythmEvidence,
    intervals: dict,
    flags: dict,
    agree: Agreement,
    confidence: float,
    urgency: str,
    *,
    sinus_override: bool = False,
) -> tuple[str, str]:
    name_en, name_ko = RHYTHM_NAMES.get(label, (label, label))
    r_en, r_ko = reasons(label, ev, intervals, flags)
    if label == "noisy":
        en = "The recording is too noisy to judge the rhythm reliably. Please record again while sitting still."
        ko = "기록에 잡음이 많아 리듬을 믿을 만하게 판단할 수 없습니다. 가만히 앉은 상태에서 다시 기록해 주세요."
    else:
        joined = "; ".join(r_en)
        en = (
            f"{joined[:1].upper()}{joined[1:]} → consistent with {name_en}."
            if r_en
            else f"Consistent with {name_en}."
        )
        ko = (
            f"{', '.join(r_ko)} → {name_ko}에 해당하는 소견입니다."
            if r_ko
            else f"{name_ko}에 해당하는 소견입니다."
        )
    if label == "paced_rhythm":
        en += (
            " A paced beat spreads from the pacemaker's lead through the heart muscle rather than"
            " along the heart's own wiring, so a wide QRS and a long QT are expected and the"
            " limits for unpaced hearts do not apply; the rhythm model never saw a paced ECG."
            " This check cannot tell how well the pacemaker works: keep your pacemaker"
            " check-ups, and see a doctor soon if you feel dizzy, faint or short of breath, or"
            " your pulse is slower than the rate your pacemaker was set to. If you have no"
            " pacemaker, have a doctor read this ECG."
        )
        ko += (
            " 조율된 박동은 심장 고유의 전도로가 아니라 인공심박동기 전극에서 심장 근육을 따라"
            " 퍼지므로 QRS가 넓고 QT가 긴 것이 예상되는 모습이며, 조율되지 않은 심장의 기준은"
            " 맞지 않습니다. 리듬 모델은 조율된 심전도를 학습한 적이 없습니다. 이 검사로는"
            " 인공심박동기가 잘 작동하는지 알 수 없으니 정기 점검을 계속 받으시고, 어지럽거나"
            " 정신을 잃을 것 같거나 숨이 차거나 맥박이 기기에 설정된 박동수보다 느리면 곧"
            " 진료를 받으세요. 인공심박동기가 없다면 의사에게 이 심전도 판독을 받으세요."
        )
    # With early beats the reasons already say why the rhythm is sinus; otherwise say why the
    # CNN's "other" was overruled.
    if sinus_override and not _early_beats(ev):
        if ev.rr_irregularity is not None and ev.rr_irregularity >= th.RR_REGULAR:
            en += (
                " Not every beat comes at the usual interval, but P waves come before the beats"
                " and most intervals are the same, so the underlying rhythm is sinus."
            )
            ko += (
                " 모든 심박이 같은 간격으로 오지는 않지만 심박 앞에 P파가 있고 대부분의 간격이"
                " 같아 기본 리듬은 동리듬입니다."
            )
        else:
            en += (
                " The shape of the beats is unusual, but P waves come before the beats at a"
                " regular rate, so the rhythm itself is sinus."
            )
            ko += (
                " 심박의 모양은 특이하지만 P파가 규칙적인 간격으로 심박 앞에 있어 리듬 자체는"
                " 동리듬입니다."
            )
    if frequent_early_beats(ev) and label not in ("atrial_fibrillation", "noisy"):
        en += (
            f" Early beats this frequent ({ev.early_beats} of {ev.n_beats} beats here) are worth a"
            " doctor's look; a 24-hour recording (Holter) shows how often they come, and"
            " palpitations, dizziness or chest discomfort are a reason not to wait."
        )
        ko += (
            f" 조기 박동이 이렇게 잦으면(여기서는 {ev.n_beats}회 중 {ev.early_beats}회) 의사에게"
            " 보여 주세요. 24시간 심전도(홀터)로 얼마나 자주 나타나는지 알 수 있으며,"
            " 두근거림·어지러움·가슴 불편감이 있으면 미루지 마세요."
        )
    elif label.startswith("sinus_") and (ev.early_beats or _early_beats(ev)):
        en += (
            " Occasional early beats are common and often harmless; mention them to a doctor,"
            " and sooner if you feel palpitations, dizziness or chest discomfort."
        )
        ko += (
            " 가끔 나타나는 조기 박동은 흔하고 대개 해롭지 않지만 진료 때 의사에게 알리고,"
            " 두근거림·어지러움·가슴 불편감이 있으면 더 일찍 진료를 받으세요."
        )
    if not agree.agrees or confidence < th.MIN_CONFIDENCE:
        why_en = "; ".join(agree.conflicts_en) or f"the model is only {confidence:.0%} sure"
        why_ko = ", ".join(agree.conflicts_ko) or f"모델의 확신도가 {confidence:.0%}에 불과합니다"
        en += f" This result is uncertain: {why_en}. Please have a doctor read the ECG."
        ko += f" 이 결과는 불확실합니다: {why_ko}. 의사에게 심전도 판독을 받아 보세요."
    if urgency == "urgent":
        en += " Seek medical care today."
        ko += " 오늘 중으로 진료를 받으세요."
    elif urgency == "soon":
        en += " Please see a doctor within the next few days."
        ko += " 며칠 안에 의사의 진료를 받아 보세요."
    return en, ko
