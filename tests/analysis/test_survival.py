"""Kaplan-Meier time to divergence: a small constructed study against a hand computation."""

from __future__ import annotations

import pandas as pd
import pytest

from pinnlab.analysis.survival import survival_report, units
from pinnlab.core.outcomes import Outcome


def study() -> pd.DataFrame:
    """Five trials of factor a; trial 5 has 3 replicates; trial 6 crashed (no unit)."""
    rows = [
        # trial, a, outcome, divergence_step, nan_onset_step, steps_run
        (0, "x", Outcome.NAN, 3, 3, 4),
        (1, "x", Outcome.STABLE, None, None, 10),  # censored at 10
        (2, "x", Outcome.BLOWUP, 8, None, 9),
        (3, "y", Outcome.SILENT_FAILURE, None, None, 5),  # censored at 5
        (4, "y", Outcome.NAN, None, 6, 7),  # onset from nan_onset_step
        (6, "y", Outcome.CRASH, None, None, None),
    ]
    frame = pd.DataFrame(rows, columns=["trial", "a", "outcome", "divergence_step", "nan_onset_step", "steps_run"])
    frame["outcome"] = frame["outcome"].astype(str)
    frame["state"] = "COMPLETE"
    rep = {
        "trial": 5,
        "a": "y",
        "outcome": str(Outcome.NAN),
        "divergence_step": 2,
        "nan_onset_step": 2,
        "steps_run": 3,
        "state": "PRUNED",
        "replicates": 3,
        "divergence_rate": 2 / 3,
        "replicate_outcomes": [str(Outcome.NAN), str(Outcome.STABLE), str(Outcome.UNBOUNDED)],
        "replicate_onsets": [2, None, 6],
        "replicate_steps_run": [3, 10, 6],
    }
    frame = pd.concat([frame, pd.DataFrame([rep])], ignore_index=True)
    for col in ("divergence_step", "nan_onset_step", "steps_run"):
        frame[col] = pd.to_numeric(frame[col]).astype("Int64")
    return frame


def test_units_one_per_seed_events_and_censoring():
    u = units(study(), ["a"]).sort_values(["trial", "seed"])
    assert list(zip(u["trial"], u["seed"], u["event"], u["step"])) == [
        (0, 0, True, 3),
        (1, 0, False, 10),
        (2, 0, True, 8),
        (3, 0, False, 5),
        (4, 0, True, 6),
        (5, 0, True, 2),
        (5, 1, False, 10),
        (5, 2, True, 6),
    ]  # the crash is no unit; the replicate trial is three


def test_kaplan_meier_matches_a_hand_computation_with_censoring():
    rep = survival_report(study(), ["a"])
    rows = {(r["factor"], r["level"]): r for r in rep["rows"]}
    # level x: events at 3 and 8, censored at 10.
    # S(3) = 1 - 1/3 = 2/3; S(8) = 2/3 * (1 - 1/2) = 1/3 -> median 8 (first S <= 0.5)
    x = rows[("a", "x")]
    assert (x["n"], x["diverged"], x["censored"]) == (3, 2, 1)
    assert x["median_step"] == 8 and x["survival_end"] == pytest.approx(1 / 3)
    curve = next(c for c in rep["curves"] if c["factor"] == "a" and c["level"] == "x")
    assert dict(zip(curve["step"], curve["survival"])) == pytest.approx({0: 1, 3: 2 / 3, 8: 1 / 3, 10: 1 / 3})
    # level y: units (5 censored), (6 event), (2 event), (10 censored), (6 event): 5 at risk
    # S(2) = 4/5; censored at 5 -> at risk 3 at 6, two events: S(6) = 4/5 * 1/3 = 4/15; median 6
    y = rows[("a", "y")]
    assert (y["n"], y["diverged"], y["censored"]) == (5, 3, 2)
    assert y["median_step"] == 6 and y["survival_end"] == pytest.approx(4 / 15)
    # everything (8 units): events 2,3,6,6,8; censored 5,10,10 -> S(2) = 7/8, S(3) = 7/8 * 6/7 = 6/8;
    # censored at 5 -> 5 at risk at 6, two events: S(6) = 6/8 * 3/5 = 0.45 -> median 6;
    # 3 at risk at 8: S(8) = 0.45 * 2/3 = 0.3
    assert rows[("(all)", "(all)")]["median_step"] == 6
    assert rows[("(all)", "(all)")]["survival_end"] == pytest.approx(0.3)
    for r in rep["rows"]:  # the band holds the median
        if r["median_low"] is not None and r["median_step"] is not None:
            assert r["median_low"] <= r["median_step"]


def test_no_judged_trial_gives_empty_sections():
    frame = study().iloc[:0]
    assert survival_report(frame, ["a"])["rows"] == []
