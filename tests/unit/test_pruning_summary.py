"""The pruning benchmark's summary arithmetic (benchmarks/_pruning_summary.py) on synthetic rows:
the channel-only sweep brackets the target from either side and bisects, the matched latency is
interpolated linearly in accuracy, no bracket gives None and a reason (never a flattering
fallback), cuts and leads."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _load():
    """benchmarks/ is not a package: load the module from its file (registered, for its dataclasses)."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "_pruning_summary.py"
    spec = importlib.util.spec_from_file_location("_pruning_summary", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_pruning_summary", module)
    spec.loader.exec_module(module)
    return module


S = _load()
GOALS, Bracket, Sweep, SweepConfig, SweepPoint = S.GOALS, S.Bracket, S.Sweep, S.SweepConfig, S.SweepPoint
comparator_summary, cut, expected_exit_ms, interpolate = S.comparator_summary, S.cut, S.expected_exit_ms, S.interpolate
lead, matched_weight, sweep = S.lead, S.matched_weight, S.sweep


class Scripted:
    """A scripted accuracy-vs-ratio curve that records which ratios the sweep asked for."""

    def __init__(self, curve):
        self.curve, self.asked = curve, []

    def __call__(self, ratio: float) -> float:
        self.asked.append(ratio)
        return self.curve(ratio)


def test_start_too_accurate_widens_to_more_aggressive_then_bisects():
    # the case: 87.5% still more accurate than channel + block, so the fair comparator is beyond it
    curve = Scripted(lambda r: 1.0 - 4.0 * max(0.0, r - 0.9))  # 1.0 up to 0.9, then falls; target at r = 0.905
    result = sweep(curve, 0.98, SweepConfig(start=0.75))
    assert curve.asked[:3] == [0.75, 0.875, 0.9375]
    assert [p.step for p in result.points[:3]] == ["start", "widen", "widen"]
    assert result.bracket is not None and result.within_tolerance
    above, below = result.bracket.above, result.bracket.below
    assert above.val_accuracy >= 0.98 > below.val_accuracy and above.ratio < below.ratio
    assert above.ratio <= 0.905 < below.ratio
    assert min(abs(above.val_accuracy - 0.98), abs(below.val_accuracy - 0.98)) <= 0.005
    assert all(p.step == "bisect" for p in result.points[3:]) and len(result.points) > 3


def test_start_less_accurate_widens_to_less_aggressive():
    curve = Scripted(lambda r: 1.0 - 0.2 * r)  # target 0.92 at r = 0.4
    result = sweep(curve, 0.92, SweepConfig(start=0.75))
    assert curve.asked[:2] == [0.75, 0.5] and curve.asked[2] == 0.125  # doubling the kept half would be 0: clipped
    assert result.bracket.above.ratio <= 0.4 < result.bracket.below.ratio
    assert result.within_tolerance


def test_bisection_stops_at_the_point_budget_and_says_it_missed_the_tolerance():
    step = Scripted(lambda r: 1.0 if r < 0.8 else 0.9)  # a cliff: no ratio comes within half a point of 0.95
    result = sweep(step, 0.95, SweepConfig(start=0.75, max_points=5))
    assert len(result.points) == 5 and result.bracket is not None and not result.within_tolerance
    assert result.bracket.above.ratio < 0.8 <= result.bracket.below.ratio


def test_bisection_stops_when_the_ratios_are_closer_than_min_width():
    step = Scripted(lambda r: 1.0 if r < 0.8 else 0.9)
    result = sweep(step, 0.95, SweepConfig(start=0.75, max_points=50, min_width=0.01))
    assert result.bracket.below.ratio - result.bracket.above.ratio <= 0.01
    assert len(result.points) < 50


def test_no_bracket_when_even_the_most_aggressive_ratio_is_as_accurate():
    flat = Scripted(lambda r: 0.99)
    result = sweep(flat, 0.98, SweepConfig(start=0.75, highest=0.9375))
    assert result.bracket is None and "most aggressive" in result.reason
    assert flat.asked == [0.75, 0.875, 0.9375]


def test_no_bracket_when_even_the_least_aggressive_ratio_is_below():
    result = sweep(Scripted(lambda r: 0.5), 0.98, SweepConfig(start=0.75, lowest=0.25))
    assert result.bracket is None and "least aggressive" in result.reason
    assert result.points[-1].ratio == 0.25


def test_no_bracket_within_the_point_budget():
    result = sweep(Scripted(lambda r: 0.99), 0.98, SweepConfig(start=0.5, max_points=2))
    assert result.bracket is None and "2 points" in result.reason


def test_non_monotone_accuracy_keeps_the_bracket_consistent():
    noisy = Scripted(lambda r: {0.75: 0.99, 0.875: 0.90, 0.8125: 0.97, 0.78125: 0.95}.get(r, 0.96))
    result = sweep(noisy, 0.96, SweepConfig(start=0.75, max_points=6))
    above, below = result.bracket.above, result.bracket.below
    assert above.val_accuracy >= 0.96 > below.val_accuracy and above.ratio < below.ratio


def test_matched_weight_and_interpolation_are_linear_in_accuracy():
    w = matched_weight(1.0, 0.9, 0.975)
    assert w == pytest.approx(0.75)
    assert interpolate(0.30, 0.20, w) == pytest.approx(0.275)
    assert matched_weight(0.98, 0.9, 0.98) == 1.0  # an end exactly on the target is that end
    with pytest.raises(ValueError):
        matched_weight(0.97, 0.9, 0.98)  # not bracketed


def test_cut_and_lead():
    assert cut(0.6, 0.15) == pytest.approx(0.75)
    assert lead(0.6, 0.15, 0.3) == pytest.approx(0.25)  # 75% cut against 50%
    assert lead(0.6, 0.3, 0.15) == pytest.approx(-0.25)  # a faster comparator gives a negative lead


def _row(acc, ms, ms8, val=None):
    return {"float32": {"accuracy": acc, "val_accuracy": val, "p50_ms": ms},
            "int8": {"accuracy": acc, "val_accuracy": val, "p50_ms": ms8}}


def test_comparator_summary_reports_the_lead_at_matched_accuracy_with_both_points():
    above, below = SweepPoint(0.75, 1.0, "start"), SweepPoint(0.875, 0.9, "widen")
    result = Sweep(0.975, (above, below), Bracket(above, below), None, False)
    rows = {0.75: _row(0.99, 0.30, 0.50), 0.875: _row(0.91, 0.20, 0.40)}
    summary = comparator_summary(result, rows, _row(0.97, 0.60, 0.70), _row(0.98, 0.15, 0.20))
    assert [p["ratio"] for p in summary["channel_only_bracket"]] == [0.75, 0.875]
    assert summary["channel_only_bracket"][0]["latency_ms"] == 0.30
    assert summary["channel_only_matched_latency_ms"] == pytest.approx(0.275)
    assert summary["lead_at_matched_accuracy_float32"] == pytest.approx(0.275 / 0.6 - 0.15 / 0.6, abs=1e-4)
    assert summary["lead_at_matched_accuracy_int8"] == pytest.approx((0.475 - 0.20) / 0.70, abs=1e-4)
    assert summary["latency_cut_channel_only"] == pytest.approx(1 - 0.275 / 0.6, abs=1e-4)
    assert summary["channel_only_ratio"] == pytest.approx(0.78125, abs=1e-4)
    assert summary["accuracy_drop_channel_only"] == pytest.approx(0.97 - 0.97, abs=1e-4)


def test_comparator_summary_without_a_bracket_reports_no_lead():
    result = Sweep(0.98, (SweepPoint(0.9375, 0.99, "widen"),), None, "even the most aggressive ...", False)
    summary = comparator_summary(result, {0.9375: _row(0.99, 0.2, 0.3)}, _row(0.97, 0.6, 0.7), _row(0.98, 0.15, 0.2))
    assert summary["channel_only_bracket"] is None and summary["channel_only_bracket_reason"]
    assert summary["lead_at_matched_accuracy_float32"] is None and summary["lead_at_matched_accuracy_int8"] is None
    assert summary["latency_cut_channel_only"] is None


def test_expected_exit_latency_and_goals():
    assert expected_exit_ms(0.25, 0.1, 0.5) == pytest.approx(0.4)
    with pytest.raises(ValueError):
        expected_exit_ms(1.5, 0.1, 0.5)
    assert GOALS["lead_at_matched_accuracy_float32"] == ">= 0.15" and GOALS["sparse_int8_gzip_reduction"] == ">= 6"


def test_no_bracket_from_above_reports_the_ceiling_lead_under_its_own_name():
    points = (SweepPoint(0.75, 1.0, "start"), SweepPoint(0.875, 0.99, "widen"), SweepPoint(0.9375, 0.985, "widen"))
    result = Sweep(0.98, points, None, "even the most aggressive ...", False)
    rows = {0.75: _row(0.99, 0.30, 0.5), 0.875: _row(0.99, 0.25, 0.45), 0.9375: _row(0.98, 0.24, 0.40)}
    summary = comparator_summary(result, rows, _row(0.97, 0.60, 0.70), _row(0.98, 0.15, 0.20))
    bound = summary["lead_over_most_aggressive_channel_only"]
    assert bound["ratio"] == 0.9375 and bound["float32"] == pytest.approx(0.15, abs=1e-4)
    assert bound["int8"] == pytest.approx(0.20 / 0.70, abs=1e-4)
    assert "ceiling" in bound["note"]
    assert summary["lead_at_matched_accuracy_float32"] is None  # the ceiling is never passed off as the matched lead


def test_no_bracket_from_below_gives_no_figure_at_all():
    result = Sweep(0.98, (SweepPoint(0.75, 0.9, "start"), SweepPoint(0.125, 0.95, "widen")), None, "least ...", False)
    rows = {0.75: _row(0.9, 0.3, 0.5), 0.125: _row(0.95, 0.5, 0.6)}
    summary = comparator_summary(result, rows, _row(0.97, 0.60, 0.70), _row(0.98, 0.15, 0.20))
    assert "lead_over_most_aggressive_channel_only" not in summary and summary["lead_at_matched_accuracy_int8"] is None


def test_no_bracket_reasons_fit_the_results_page():
    above = sweep(Scripted(lambda r: 0.99), 0.98, SweepConfig(start=0.75)).reason
    below = sweep(Scripted(lambda r: 0.5), 0.98, SweepConfig(start=0.75)).reason
    assert len(above) <= 80 and len(below) <= 80 and "0.9900" in above and "0.5000" in below


def test_an_end_within_tolerance_still_refines_a_wide_bracket():
    # the full-size case: 75% lands 0.36 points below the target, 50% 0.71 above; a quarter of the
    # ratio range apart is too wide to interpolate a latency across, so the sweep bisects once more
    curve = Scripted(lambda r: {0.75: 0.9857, 0.5: 0.9964}.get(r, 0.9893 if r < 0.7 else 0.98))
    result = sweep(curve, 0.9893, SweepConfig(start=0.75, max_width=0.125))
    assert curve.asked[:3] == [0.75, 0.5, 0.625] and result.points[2].step == "bisect"
    assert result.bracket.below.ratio - result.bracket.above.ratio <= 0.125 and result.within_tolerance
