"""``seed``: the Stack Overflow question pinnlab grew from, and its accepted answer.

The question (2018, Keras 2): minimise u_x + u_yy of Input(2) → Dense(100, relu) → Dense(1,
softplus) on the 60×60 grid ``np.mgrid[-3:3:0.1, -3:3:0.1]``, SGD 0.01, batch 10, 100 epochs;
"after the first epoch I'm getting just nan's".  The accepted answer: the loss is unbounded below,
so the weights grow until they overflow; shown on Dense(5, softplus) → Dense(1, softplus), whose two
kernels grow with opposite signs while the biases barely move.

Parts (each a list of :class:`~pinnlab.reproduce.base.Claim` rows and a ``parts[...]`` entry):

a. the question's setup (preset ``seed``) over 3 seeds: divergence, NaN onset, exponential rate
   of the weight norm (least-squares slope of ln‖W‖ over the second half of the finite history);
b. the answer's network (preset ``seed-answer``): each layer's kernel growth, the sign of
   W1[i, j]·W2[j] for every hidden unit j and input i at the last finite state, and the median
   ratio ‖∂L/∂biases‖ / ‖∂L/∂kernels‖ over the first 50 steps (a 50-step run with diagnostics
   every step, for both networks);
c. the literal loss (``problem.params.literal``) against the intended one: their values at
   initialisation on the same first batch, the size of the mixed term u_xy that the literal
   "u_yy" adds, and whether both diverge;
d. remedies over 5 seeds.  *Stable* is the outcome class (finite, no growth rule fired).
   *Meaningful* asks more: the network must have found the solution the problem was meant to
   determine, u = x − y²/2 (relative L2 error ≤ 5% on the grid's cell centres).  A near-constant u
   is stable and meaningless; its *spread* std(u) / std(x − y²/2) is close to 0.

The full variant runs the raw-loss parts until the first non-finite value (``divergence.stop_early:
false``), as the question did; ``--quick`` stops them when divergence is detected and gives the
remedies 10 epochs on 2 seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pinnlab.core.outcomes import Outcome
from pinnlab.problems.seed import Seed
from pinnlab.reproduce.base import Session, count_span, fmt, span

TITLE = "seed: derivatives of the network output in a Keras loss (u_x + u_yy)"
SOURCE = (
    "Stack Overflow question 'derivatives of the network output with respect to its inputs in a Keras loss' "
    "(2018) and its accepted answer"
)
QUESTION = "SO question"
ANSWER = "SO accepted answer"
PRE_ENGINE = "pinnlab pre-engine measurement"
STEPS_PER_EPOCH = 360
MEANINGFUL_ERROR = 0.05  # relative L2 error against u = x − y²/2 for "meaningful"


def _budget(session: Session) -> dict[str, Any]:
    if session.quick:
        return {"seeds": [0, 1], "remedy_seeds": [0, 1], "stop_early": True, "remedy_epochs": 10}
    return {"seeds": [0, 1, 2], "remedy_seeds": [0, 1, 2, 3, 4], "stop_early": False, "remedy_epochs": 100}


def _rate(result) -> float:
    """d ln‖W‖ / dstep over the second half of the finite history."""
    from pinnlab.training import growth_rate

    wn = result.history["weight_norm/total"].to_numpy()
    steps = result.history.index.to_numpy()
    ok = np.isfinite(wn)
    steps, wn = steps[ok], wn[ok]
    half = len(steps) // 2
    return growth_rate(steps[half:], wn[half:])


def _kernel_norms(result, trainer) -> list[tuple[str, float, float]]:
    """(kernel, norm at step 0, norm at the last diagnostics step) for each layer."""
    out = []
    for name in trainer.var_names:
        if not name.endswith("kernel"):
            continue
        col = result.history[f"weight_norm/{name}"].dropna()
        out.append((name, float(col.iloc[0]), float(col.iloc[-1])))
    return out


def _divergence_summary(result) -> dict[str, Any]:
    return {
        "outcome": result.outcome,
        "divergence_step": result.divergence_step,
        "nan_onset_step": result.nan_onset_step,
        "first_nonfinite": result.first_nonfinite,
        "growth_rate": _rate(result),
        "weight_norm_ratio": result.weight_norm_ratio,
    }


def _bias_kernel_ratio(session: Session, preset: str, seed: int) -> float:
    """Median over the first 50 steps of ‖∂L/∂(all biases)‖ / ‖∂L/∂(all kernels)‖."""
    cfg = session.config(preset, {"training.seed": seed, "training.steps": 50, "diagnostics.every": 1})
    result, trainer = session.train(cfg, "first 50 steps", part="b")
    h = result.history

    def total(suffix: str) -> np.ndarray:
        cols = [f"grad_norm/{n}" for n in trainer.var_names if n.endswith(suffix)]
        return np.sqrt((h[cols].to_numpy() ** 2).sum(axis=1))

    return float(np.median(total("bias") / total("kernel")))


def _sign_pattern(trainer) -> dict[str, Any]:
    """Signs of W1[i, j]·W2[j] (input i, hidden unit j) and of W2[j] at the current weights."""
    kernels = [w for w, n in zip(trainer.get_weights(), trainer.var_names) if n.endswith("kernel")]
    w1, w2 = kernels[0], kernels[-1][:, 0]
    prod = w1 * w2[None, :]
    coords = trainer.problem.coords
    return {
        "products": {c: "".join("-" if p < 0 else "+" for p in prod[i]) for i, c in enumerate(coords)},
        "w2": "".join("-" if w < 0 else "+" for w in w2),
        "negative_units": {c: int(np.sum(prod[i] < 0)) for i, c in enumerate(coords)},
        "units": int(prod.shape[1]),
        # share of sum_j |W1[i,j] W2[j]| carried by units whose product is negative
        "negative_share": {
            c: float(np.abs(prod[i][prod[i] < 0]).sum() / max(np.abs(prod[i]).sum(), 1e-30))
            for i, c in enumerate(coords)
        },
    }


def part_a(session: Session, b: dict) -> list:
    runs = []
    for seed in b["seeds"]:
        cfg = session.config("seed", {"training.seed": seed, "divergence.stop_early": b["stop_early"]})
        result, trainer = session.train(cfg, "question (100 relu, raw u_x+u_yy)", part="a")
        runs.append((result, trainer))
    rows = [
        _divergence_summary(r) | {"seed": s, "kernel_norms": _kernel_norms(r, t)} for (r, t), s in zip(runs, b["seeds"])
    ]
    session.parts["a"] = {"runs": rows}
    divergent = all(r.diverged for r, _ in runs)
    rates = [row["growth_rate"] for row in rows]
    nan_steps = [row["nan_onset_step"] for row in rows]
    k1000 = []
    for r, t in runs:
        for name in t.var_names:
            if name.endswith("kernel") and 1000 in r.history.index:
                k1000.append(r.history.loc[:1000, f"weight_norm/{name}"].dropna().iloc[-1])
    session.claim(
        "a",
        "The question's setup (Dense(100, relu) → Dense(1, softplus), SGD 0.01, batch 10, u_x + u_yy) diverges",
        QUESTION,
        f"{sum(r.diverged for r, _ in runs)}/{len(runs)} seeds divergent ("
        + ", ".join(sorted({r.outcome for r, _ in runs}))
        + f"); detected at steps {span([row['divergence_step'] for row in rows])}",
        divergent,
        "every seed nan, blowup or unbounded",
    )
    if not b["stop_early"]:
        epochs = [None if s is None else s / STEPS_PER_EPOCH for s in nan_steps]
        session.claim(
            "a",
            "NaN 'after the first epoch'",
            QUESTION,
            f"first non-finite value on {count_span(nan_steps)} (epochs {span(epochs)}), first in "
            + ", ".join(sorted({str(row["first_nonfinite"]) for row in rows}))
            + f"; {PRE_ENGINE}: 8,560–8,680",
            all(s is not None and s < 2 * STEPS_PER_EPOCH for s in nan_steps),
            "NaN within 2 epochs on every seed",
            partly=all(s is not None for s in nan_steps),
        )
    session.claim(
        "a",
        "The weights grow without bound (exponentially) because the loss is unbounded below",
        ANSWER,
        f"d ln‖W‖/dstep = {span(rates, 2)} (×e every {span([1 / r for r in rates if r and r > 0], 2)} steps); "
        f"kernel norms at step 1,000: {span(k1000)} ({PRE_ENGINE}: 70–110)",
        divergent and all(r > 0 for r in rates),
        "divergent and ln‖W‖ rising linearly (positive slope) on every seed",
    )
    return runs


def part_b(session: Session, b: dict) -> None:
    runs = []
    for seed in b["seeds"]:
        cfg = session.config("seed-answer", {"training.seed": seed, "divergence.stop_early": b["stop_early"]})
        initial = {}
        result, trainer = session.train(
            cfg,
            "answer (5 softplus, raw u_x+u_yy)",
            part="b",
            before=lambda t, i=initial: i.update(signs=_sign_pattern(t)),
        )
        runs.append((result, trainer, seed, initial["signs"]))
    rows = []
    for r, t, seed, signs_init in runs:
        row = _divergence_summary(r) | {"seed": seed, "kernel_norms": _kernel_norms(r, t)}
        row["signs_end"] = _sign_pattern(t)
        row["signs_init"] = signs_init
        rows.append(row)
    ratios = {
        "seed-answer": [_bias_kernel_ratio(session, "seed-answer", s) for s in b["seeds"]],
        "seed": [_bias_kernel_ratio(session, "seed", s) for s in b["seeds"]],
    }
    session.parts["b"] = {"runs": rows, "bias_over_kernel_grad_first_50_steps": ratios}
    growth = [[end / start for _, start, end in row["kernel_norms"]] for row in rows]
    session.claim(
        "b",
        "Dense(5, softplus) → Dense(1, softplus) diverges as well",
        ANSWER,
        f"{sum(r.diverged for r, *_ in runs)}/{len(runs)} seeds divergent; "
        + (
            f"NaN on {count_span([row['nan_onset_step'] for row in rows])} ({PRE_ENGINE}: 5,700–8,050)"
            if not b["stop_early"]
            else f"detected at steps {span([row['divergence_step'] for row in rows])}"
        ),
        all(r.diverged for r, *_ in runs),
        "every seed divergent",
    )
    session.claim(
        "b",
        "The kernels of both layers grow together",
        ANSWER,
        "kernel norm growth to the last finite state, layer 1: "
        f"×{span([g[0] for g in growth])}, layer 2: ×{span([g[-1] for g in growth])}",
        all(min(g) >= 10 for g in growth),
        "both kernels ≥10× their initial norm on every seed",
    )
    share = [row["signs_end"]["negative_share"]["x"] for row in rows]
    patterns = "; ".join(
        f"seed {row['seed']}: x {row['signs_end']['products']['x']} "
        f"({row['signs_end']['negative_units']['x']}/{row['signs_end']['units']} negative, "
        f"at init {row['signs_init']['negative_units']['x']}/{row['signs_init']['units']})"
        for row in rows
    )
    session.claim(
        "b",
        "The second layer keeps the opposite sign of the first (so the derivative goes negative)",
        ANSWER,
        f"sign of W1[x,j]·W2[j] per hidden unit j at the last finite state: {patterns}; "
        f"units with a negative product carry {span([100 * x for x in share])}% of Σ|W1[x,j]·W2[j]|",
        all(x >= 0.9 for x in share),
        "on every seed, units with W1[x,j]·W2[j] < 0 carry ≥ 90% of Σ_j |W1[x,j]·W2[j]|",
        partly=all(x >= 0.6 for x in share),
    )
    r5, r100 = ratios["seed-answer"], ratios["seed"]
    session.claim(
        "b",
        "Biases get (almost) no gradient: they do not contribute to the derivative",
        ANSWER,
        f"median ‖∂L/∂b‖/‖∂L/∂W‖ over the first 50 steps: {span(r5)} (5 softplus), {span(r100)} (100 relu); "
        f"{PRE_ENGINE}: 0.11–0.29 and 0.04–0.12",
        all(x < 1 / 3 for x in r5 + r100),
        "ratio < 1/3 on every seed of both networks",
    )


def part_c(session: Session, b: dict, intended: list) -> None:
    import tensorflow as tf

    from pinnlab.numerics.derivatives import partials

    rows = []
    for (r_int, _), seed in zip(intended, b["seeds"]):
        cfg = session.config(
            "seed", {"training.seed": seed, "problem.params.literal": True, "divergence.stop_early": b["stop_early"]}
        )
        initial = {}

        def mixed_term(trainer, initial=initial):
            # the same initial network as the intended run (same seed): how big is the u_xy that
            # the literal "u_yy" adds, over the whole grid?
            x = tf.constant(Seed.question_grid(), trainer.dtype)
            _, d = partials(trainer.model, x, [(1, 1), (0, 1)])
            initial["mixed"] = float(
                np.mean(np.abs(d[(0, 1)].numpy())) / max(np.mean(np.abs(d[(1, 1)].numpy())), 1e-30)
            )

        r_lit, _ = session.train(cfg, "literal loss df1[0,0] + df2[0,1]", part="c", before=mixed_term)
        lit0 = float(r_lit.history["loss/total"].iloc[0])
        int0 = float(r_int.history["loss/total"].iloc[0])
        mixed = initial["mixed"]
        rows.append(
            {
                "seed": seed,
                "literal_at_init": lit0,
                "intended_at_init": int0,
                "relative_difference": abs(lit0 - int0) / max(abs(int0), 1e-30),
                "mean_abs_u_xy_over_u_yy": mixed,
                "literal": _divergence_summary(r_lit),
                "intended": _divergence_summary(r_int),
            }
        )
    session.parts["c"] = {"runs": rows}
    rel = [row["relative_difference"] for row in rows]
    session.claim(
        "c",
        "The literal loss df1[0,0] + df2[0,1] is not u_x + u_yy: gradients(df1) differentiates the sum "
        "(adds u_xy) and [0, ·] keeps the first sample only",
        QUESTION,
        "at initialisation on the same first batch: literal "
        + ", ".join(fmt(row["literal_at_init"], 3) for row in rows)
        + " vs intended "
        + ", ".join(fmt(row["intended_at_init"], 3) for row in rows)
        + f" (relative difference {span(rel)}); mean |u_xy| / mean |u_yy| on the grid "
        + span([r["mean_abs_u_xy_over_u_yy"] for r in rows]),
        all(x > 0.01 for x in rel),
        "values differ by more than 1% on every seed",
    )
    when = "nan_onset_step" if not b["stop_early"] else "divergence_step"
    session.claim(
        "c",
        "Both the literal and the intended loss diverge",
        QUESTION,
        f"literal: {sum(Outcome(r['literal']['outcome']).divergent for r in rows)}/{len(rows)} divergent, "
        f"{'NaN' if when == 'nan_onset_step' else 'detected'} on {count_span([r['literal'][when] for r in rows])}; "
        f"intended: {count_span([r['intended'][when] for r in rows])}"
        + (f" ({PRE_ENGINE}: literal NaN ≈ 5,900)" if when == "nan_onset_step" else ""),
        all(Outcome(r["literal"]["outcome"]).divergent for r in rows)
        and all(Outcome(r["intended"]["outcome"]).divergent for r in rows),
        "both divergent on every seed",
    )


REMEDIES = [
    # (key, label, preset, overrides, claim, expected stable, expected meaningful)
    (
        "raw+l2=1e-2",
        "raw loss + L2 weight decay 1e-2",
        "seed",
        {"regularization.l2": 0.01},
        f"Weight decay 1e-2 on the raw loss only delays the NaN ({PRE_ENGINE}: NaN at ≈ 8,900–9,000)",
        False,
        False,
    ),
    (
        "raw+l2=1",
        "raw loss + L2 weight decay 1.0",
        "seed",
        {"regularization.l2": 1.0},
        "Weight decay 1.0 on the raw loss is finite but collapses u to a constant",
        True,
        False,
    ),
    (
        "squared",
        "squared residual",
        "seed",
        {"loss.formulation": "squared"},
        "The squared residual alone is stable but u is near-constant (any constant solves the PDE)",
        True,
        False,
    ),
    (
        "squared+anchor",
        "squared residual + u(0,0)=1",
        "seed",
        {"loss.formulation": "squared", "problem.params.constraint": "anchor"},
        "The squared residual with one anchored point u(0,0) = 1: stable, still a near-constant u",
        True,
        False,
    ),
    (
        "squared+dirichlet",
        "squared residual + Dirichlet (u = x − y²/2), tanh, linear output",
        "seed-fixed",
        {},
        f"The squared residual with a Dirichlet condition from u = x − y²/2: stable on every seed, small error "
        f"({PRE_ENGINE}: 0.2–0.6%)",
        True,
        True,
    ),
]


def part_d(session: Session, b: dict, question: list) -> dict[str, np.ndarray]:

    grid = Seed.question_grid()
    centres = np.mgrid[-2.95:2.95:0.1, -2.95:2.95:0.1].reshape(2, -1).T
    ref = (centres[:, 0] - 0.5 * centres[:, 1] ** 2)[:, None]
    pictures: dict[str, np.ndarray] = {"reference": (grid[:, 0] - 0.5 * grid[:, 1] ** 2)}

    def judge(result, trainer) -> dict[str, Any]:
        u = trainer.predict(centres)
        finite = bool(np.isfinite(u).all())
        err = float(np.linalg.norm(u - ref) / np.linalg.norm(ref)) if finite else None
        spread = float(np.std(u) / np.std(ref)) if finite else None
        stable = result.outcome == Outcome.STABLE
        return {
            "stable": stable,
            "meaningful": bool(stable and err is not None and err <= MEANINGFUL_ERROR),
            "error_vs_reference": err,
            "u_spread": spread,
            "growth_rate": _rate(result),
        }

    table = []
    nan_no_decay = [r.nan_onset_step for r, _ in question]
    rate_no_decay = [_rate(r) for r, _ in question]
    for key, label, preset, overrides, claim, exp_stable, exp_meaningful in REMEDIES:
        rows = []
        for seed in b["remedy_seeds"]:
            # the raw-loss remedies run like part a: to the NaN (full) or to detection (quick)
            is_raw = preset == "seed" and "loss.formulation" not in overrides
            raw = {"divergence.stop_early": b["stop_early"]} if is_raw else {}
            cfg = session.config(
                preset, {**overrides, **raw, "training.seed": seed, "training.epochs": b["remedy_epochs"]}
            )
            result, trainer = session.train(cfg, key, part="d", extra=judge)
            rows.append(session.result.runs[-1])
            if seed == b["remedy_seeds"][0]:
                pictures[label] = trainer.predict(grid)[:, 0] if result.nan_onset_step is None else None
        n = len(rows)
        stable = sum(r["stable"] for r in rows)
        meaningful = sum(r["meaningful"] for r in rows)
        onsets = [r["nan_onset_step"] if r["nan_onset_step"] is not None else r["divergence_step"] for r in rows]
        entry = {
            "remedy": label,
            "stable": f"{stable}/{n}",
            "meaningful": f"{meaningful}/{n}",
            "outcomes": ", ".join(sorted({r["outcome"] for r in rows})),
            "divergence_or_nan_step": span(onsets),
            "error_vs_x-y²/2": span([r["error_vs_reference"] for r in rows]),
            "u_spread": span([r["u_spread"] for r in rows]),
        }
        table.append(entry)
        ours = (
            f"stable {stable}/{n}, meaningful {meaningful}/{n}; "
            + (f"diverged at steps {span(onsets)}; " if stable < n else "")
            + f"error vs x − y²/2 {entry['error_vs_x-y²/2']}, spread std(u)/std(x − y²/2) {entry['u_spread']}"
        )
        ok = stable == (n if exp_stable else 0) and meaningful == (n if exp_meaningful else 0)
        if key == "raw+l2=1e-2":
            # "only delays": still divergent, with a smaller exponential rate (and, run to the end, a later NaN)
            rates = [r["growth_rate"] for r in rows]
            ours += f"; d ln‖W‖/dstep {span(rates, 3)} vs {span(rate_no_decay, 3)} without decay"
            delayed = bool(np.median(rates) < np.median(rate_no_decay)) and min(rates) > 0
            if not b["stop_early"]:
                nans = [r["nan_onset_step"] for r in rows]
                ours += f"; NaN on {count_span(nans)} vs {count_span(nan_no_decay)} without decay"
                delayed = (
                    delayed
                    and all(x is not None for x in nans + nan_no_decay)
                    and bool(np.median(nans) > np.median(nan_no_decay))
                )
            ok = ok and delayed
        if key in ("raw+l2=1", "squared", "squared+anchor") and exp_stable:
            ok = ok and all(r["u_spread"] is not None and r["u_spread"] < 0.1 for r in rows)
        criterion = (
            f"stable on {'every' if exp_stable else 'no'} seed, meaningful on {'every' if exp_meaningful else 'no'} seed"
            + (
                "; growth rate positive but below the rate without decay"
                + ("" if b["stop_early"] else ", NaN later than without decay")
                if key == "raw+l2=1e-2"
                else ""
            )
            + ("; spread < 0.1 (near-constant u)" if key in ("raw+l2=1", "squared", "squared+anchor") else "")
        )
        session.claim(
            "d", claim, PRE_ENGINE if key != "squared+dirichlet" else ANSWER + " + " + PRE_ENGINE, ours, ok, criterion
        )
    session.parts["d"] = {
        "remedies": table,
        "seeds": b["remedy_seeds"],
        "epochs": b["remedy_epochs"],
        "meaningful_means": f"relative L2 error vs u = x - y^2/2 <= {MEANINGFUL_ERROR}",
    }
    session.table("d: remedies (stable = finite and no growth rule fired; meaningful = u ≈ x − y²/2)", table)
    return pictures


def run(session: Session) -> None:
    b = _budget(session)
    question = part_a(session, b)
    part_b(session, b)
    part_c(session, b, question)
    pictures = part_d(session, b, question)
    from pinnlab.reproduce.figures import seed_figures

    for path in seed_figures(session, question, pictures):
        session.figure(path)
