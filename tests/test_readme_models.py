"""The README's model table quotes each card's held-out figures; this keeps the two from drifting.

The cards (written by the training/ scripts) are the source of truth: when a card changes and the
README row does not, this test names the figure to update.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"


def _card(name: str) -> dict:
    return json.loads((WEIGHTS / f"{name}.json").read_text())


def _signed(value: float) -> str:
    """A whole number as the README writes it: typographic minus, no plus sign."""
    rounded = round(value)
    return f"−{abs(rounded)}" if rounded < 0 else f"{rounded}"


def _interval(card: dict, key: str, label: str) -> str:
    ours = card["metrics"]["held_out_global_intervals_vs_annotations"]["ours (ecg_delineate)"][key]
    return f"{label} {_signed(ours['mean'])}±{round(ours['sd'])} ms"


def quoted_figures(name: str) -> list[str]:
    """The figures the README must show for a model, formatted from its card."""
    card = _card(name)
    metrics = card["metrics"]
    if name == "skin_lesion":
        test = metrics["test"]
        return [f"balanced acc. {test['balanced_accuracy']:.2f}",
                f"melanoma AUC {test['melanoma_auc']:.2f}", f"Dice {test['dice']:.2f}"]
    if name == "ear_classifier":
        sources = metrics["per_source"]
        return [f"balanced acc. {metrics['overall']['balanced_accuracy']:.2f}",
                f"macro-F1 {metrics['overall']['macro_f1']:.2f}",
                f"Chile {sources['chl']['balanced_accuracy']:.2f}",
                f"Ohio {sources['ohi']['balanced_accuracy']:.2f}",
                f"Turkey {sources['tur']['balanced_accuracy']:.2f}"]
    if name == "ear_gate":
        rejected = 100 * metrics["held_out_negatives"]["rejection_rate"]
        falsely = 100 * metrics["held_out_eardrums"]["false_rejection_rate"]
        return [f"{rejected:.1f} % of held-out non-eardrums rejected",
                f"{falsely:.1f} % of eardrums falsely rejected"]
    if name == "ecg_rhythm":
        test = metrics["held_out_cinc2017_test"]
        served = metrics["held_out_cinc2017_test_served_labels"]
        twelve = metrics["twelve_lead"]["overall_accuracy"]
        rate_convention = metrics["twelve_lead"]["sinus_rate_convention"]
        convention = rate_convention["accuracy_if_counted_right"]
        n_convention = sum(rate_convention["disagreements"].values())
        paced = metrics["twelve_lead"]["paced_records"]
        with_paced = paced["accuracy_if_counted_right_with_rate_convention"]
        return [f"challenge F1 {test['challenge_score_mean_f1_normal_af_other']:.2f}",
                f"AF F1 {test['f1']['atrial_fibrillation']:.2f}",
                ("labels scored as CinC families: challenge F1 "
                 f"{served['challenge_score_mean_f1_normal_af_other']:.2f}, "
                 f"AF F1 {served['f1']['atrial_fibrillation']:.2f}"),
                f"twelve-lead records: {round(100 * twelve)} % of rhythm labels right",
                f"{round(100 * convention)} % counting the {n_convention} LUDB sinus records",
                f"{round(100 * with_paced)} % counting also the {paced['n']} paced records"]
    if name == "ecg_rhythm_stack":
        test = metrics["held_out_cinc2017_test"]
        return [f"challenge F1 {test['challenge_score_mean_f1_normal_af_other']:.3f}",
                f"AF F1 {test['f1']['atrial_fibrillation']:.3f}"]
    if name == "ecg_delineate":
        return [_interval(card, "pr_ms", "PR"), _interval(card, "qrs_ms", "QRS"),
                _interval(card, "qt_ms", "QT")]
    raise AssertionError(f"no README figures defined for the card {name}.json: add them here")


def readme_rows() -> dict[str, str]:
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("| `"):
            rows[line.split("`")[1]] = line
    return rows


CARDS = sorted(p.stem for p in WEIGHTS.glob("*.json"))


def test_every_card_has_a_readme_row():
    assert CARDS, "no model cards found under weights/"
    missing = [name for name in CARDS if name not in readme_rows()]
    assert not missing, f"README's model table lacks rows for {missing}"


@pytest.mark.parametrize("name", CARDS)
def test_readme_quotes_the_cards_held_out_figures(name):
    row = readme_rows()[name]
    stale = [figure for figure in quoted_figures(name) if figure not in row]
    assert not stale, f"README row for {name} should say {stale} (from weights/{name}.json)"


def test_readme_quotes_the_digitiser_evaluation():
    """The digitiser has no weights: its figures come from eval_digitize's results file."""
    results = (ROOT / "training" / "ecg" / "eval_digitize_results.txt").read_text().splitlines()
    medians = {line.split()[0]: line.split()[5] for line in results
               if line.split()[:1] in (["clean"], ["phone"])}
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"{medians['clean']} dB on clean scans" in readme
    assert f"{medians['phone']} dB on phone-like photos" in readme


def test_readme_quotes_the_photo_analysis_evaluation():
    """The photo-vs-file figures come from eval_photo_analysis's results file (phone section)."""
    results = (ROOT / "training" / "ecg" / "eval_photo_analysis_results.txt").read_text()
    phone = results.split("[phone]", 1)[1]
    photo_vs_file = phone.split("photo - file:", 1)[1].split("printed - file:", 1)[0]
    rows = {line.split()[0]: line.split() for line in photo_vs_file.splitlines() if line.strip()}
    label_share = phone.split("photo as file: rhythm label ", 1)[1].split("%", 1)[0]
    readme = " ".join((ROOT / "README.md").read_text().split())
    qrs, qtc = rows["qrs_ms"], rows["qtc_ms"]
    assert f"QRS reads {qrs[2]} ± {qrs[3]} ms and QTc {qtc[2]} ± {qtc[3]} ms longer" in readme
    assert f"the rhythm label is the file's on {label_share} % of sheets" in readme
