"""The training scripts' progress bar: count, elapsed/remaining time and the figures given."""

from __future__ import annotations

from training.common.progress import progress_bar


def test_progress_bar_reports_the_count_and_the_latest_figures(capsys):
    bar = progress_bar(4, "rhythm CNN (member 0)", initial=1)  # resumed after one epoch
    for loss in (0.9, 0.7, 0.5):
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.1f}")
    bar.close()
    err = capsys.readouterr().err
    assert "rhythm CNN (member 0)" in err and "4/4" in err and "loss=0.5" in err
    assert "epoch" in err and "<" in err  # "elapsed<remaining" time
