"""Nyström-preconditioned Newton–CG (NysNewton-CG, Rathore et al. 2024): a damped Newton step per row.

Each iteration solves (H + μI) d = g for the search direction by preconditioned conjugate gradients
on Hessian-vector products (H: the Hessian of the total loss in the flattened weights, computed by
:func:`pinnlab.training.sharpness.hessian_vector_product`, nested tapes through the residual's input
derivatives), then takes θ ← θ − t·d with t from an Armijo backtracking line search starting at 1.
The preconditioner is a rank-r Nyström approximation H ≈ U diag(S) Uᵀ from r HVPs on a random
orthonormal sketch, refreshed every ``optimizer.newton_precond_every`` iterations; its inverse
P⁻¹ = (S_r + μ) U (S + μ)⁻¹ Uᵀ + (I − U Uᵀ) flattens the top of the spectrum that makes a
PINN's loss landscape ill-conditioned and first-order methods stall.  CG starts from the previous
direction (a warm start, as in the paper's code).

Settings (``optimizer.*``): ``newton_rank`` (r), ``newton_mu`` (μ), ``newton_cg_iters`` (CG
iterations per step), ``newton_cg_tol`` (stop CG once ‖residual‖ ≤ tol·‖g‖), ``newton_precond_every``.
The paper runs CG to an absolute 1e-16 or 1,000 iterations; here CG stops at a relative tolerance or
after ``newton_cg_iters`` (100 by default), which keeps a step at seconds on 2 CPU cores.

The Armijo constants (sufficient decrease 0.1, halving, at most 30 halvings) are the paper's; a
line search that finds no decrease takes no step, drops the warm start and refreshes the
preconditioner at the next iteration.  The algebra (:func:`nystrom`, :func:`pcg`, :func:`armijo`)
is NumPy on float64 vectors, unit-tested against dense matrices (tests/training/test_newton_cg.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["ARMIJO_DECREASE", "ARMIJO_HALVINGS", "Nystrom", "nystrom", "pcg", "armijo"]

ARMIJO_DECREASE = 0.1  # accept t once f(θ − t d) ≤ f(θ) − 0.1·t·gᵀd (the paper's α)
ARMIJO_HALVINGS = 30  # t down to 2⁻³⁰: below that a float32 step changes no weight


class Nystrom:
    """A rank-r Nyström approximation U diag(S) Uᵀ of a PSD operator and its damped inverse."""

    def __init__(self, U: np.ndarray, S: np.ndarray):
        self.U, self.S = U, S

    def inverse(self, x: np.ndarray, mu: float) -> np.ndarray:
        """P⁻¹ x for P = U (S + μ) Uᵀ / (S_r + μ) + (I − U Uᵀ) (Frangella, Tropp, Udell 2023)."""
        z = self.U.T @ x
        return (self.S[-1] + mu) * (self.U @ (z / (self.S + mu))) + (x - self.U @ z)


def nystrom(apply: Callable[[np.ndarray], np.ndarray], size: int, rank: int, rng: np.random.Generator) -> Nystrom:
    """The Nyström approximation of the operator ``apply`` (v ↦ Hv) from ``rank`` products.

    Stabilised as in the paper's code: a shift of machine epsilon, and, when the sketched core is
    not positive definite (H is indefinite away from a minimum), a shift by its most negative
    eigenvalue; the shift is taken off the eigenvalues again and they are clipped at 0.
    """
    rank = min(rank, size)
    omega, _ = np.linalg.qr(rng.standard_normal((size, rank)))
    Y = np.stack([apply(omega[:, j]) for j in range(rank)], axis=1)
    shift = np.finfo(np.float32).eps * max(np.linalg.norm(Y), 1.0)
    Y = Y + shift * omega
    core = omega.T @ Y
    core = (core + core.T) / 2
    try:
        C = np.linalg.cholesky(core)
    except np.linalg.LinAlgError:
        eigs, vecs = np.linalg.eigh(core)
        extra = abs(float(eigs.min())) + shift
        shift += extra
        Y = Y + extra * omega
        C = np.linalg.cholesky((vecs * (eigs + extra)) @ vecs.T)
    B = np.linalg.solve(C, Y.T).T  # Y C⁻ᵀ
    U, sigma, _ = np.linalg.svd(B, full_matrices=False)
    return Nystrom(U, np.maximum(sigma**2 - shift, 0.0))


def pcg(apply, b: np.ndarray, x0: np.ndarray, mu: float, precond: Nystrom | None, tol: float, iters: int):
    """Solve (A + μI) x = b by preconditioned CG from ``x0``: ``(x, iterations, ‖residual‖ / ‖b‖)``.

    Stops after ``iters`` iterations, once ‖r‖ ≤ tol·‖b‖, or at non-positive curvature pᵀ(A + μI)p
    (the damped operator is then indefinite along p: the iterate so far is kept)."""
    inv = (lambda r: r) if precond is None else (lambda r: precond.inverse(r, mu))
    bnorm = float(np.linalg.norm(b)) or 1.0
    x = np.array(x0, np.float64)
    r = b - (apply(x) + mu * x) if np.any(x) else b.copy()
    z = inv(r)
    p = z.copy()
    rz = float(r @ z)
    done = 0
    for done in range(1, iters + 1):
        if np.linalg.norm(r) <= tol * bnorm:
            done -= 1
            break
        v = apply(p) + mu * p
        curvature = float(p @ v)
        if not curvature > 0:
            done -= 1
            break
        alpha = rz / curvature
        x += alpha * p
        r -= alpha * v
        z = inv(r)
        rz, rz_old = float(r @ z), rz
        p = z + (rz / rz_old) * p
    return x, done, float(np.linalg.norm(r)) / bnorm


def armijo(f: Callable[[float], float], f0: float, slope: float, t: float = 1.0) -> float:
    """The first t in (t, t/2, t/4, …) with f(t) ≤ f0 − 0.1·t·slope (``slope`` = gᵀd > 0); 0 if none."""
    for _ in range(ARMIJO_HALVINGS + 1):
        ft = f(t)
        if np.isfinite(ft) and ft <= f0 - ARMIJO_DECREASE * t * slope:
            return t
        t /= 2
    return 0.0
