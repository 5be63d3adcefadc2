"""Predicted customer lifetime value (pLTV): BG/NBD × Gamma-Gamma, fitted by maximum likelihood.

SPEC.md §5.8: predicted LTV = BG/NBD expected purchases × Gamma-Gamma expected order value over a
horizon (default 12 months), discounted (default 1 %/month); fitted by maximum likelihood, it must
reproduce the published CDNOW estimates of Fader, Hardie & Lee (2005).

Models and formulas:

- BG/NBD: Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative to the
  Pareto/NBD model", Marketing Science 24(2). While alive a customer buys at Poisson rate λ,
  λ ~ Gamma(r, α); after each *repeat* purchase they drop out with probability p, p ~ Beta(a, b).
- Gamma-Gamma: Fader, Hardie & Lee (2005), "RFM and CLV: using iso-value curves for customer base
  analysis", JMR 42(4), and Fader & Hardie (2013), "The Gamma-Gamma model of monetary value".
  Each order value ~ Gamma(p, ν), ν ~ Gamma(q, v) across customers (the note calls v "γ").

Per-customer inputs (the usual "RFM" summary of a calibration period):

- ``frequency`` x: number of *repeat* purchases (purchases after the first; purchases on the same
  day usually count as one),
- ``recency`` t_x: time of the last purchase, measured from the first purchase (0 when x = 0),
- ``T``: time from the first purchase to the end of the calibration period,
- ``monetary_value``: mean value of the repeat purchases (the first purchase is left out, as in
  the Gamma-Gamma note; 0 or anything when x = 0).

Times are in one unit of your choice (CDNOW is in weeks); α is then in that unit. Only
:func:`predict_clv` needs to know the unit, through ``time_unit`` = days per model period.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import scipy.integrate
import scipy.optimize
import scipy.special as sp
from numpy.typing import ArrayLike, NDArray

DAYS_PER_MONTH = 30.4375
"""Mean Gregorian month (365.25 / 12 days): turns a horizon in months into model time."""

# Log-parameter bounds: exp(±25) is far outside any sane estimate, but keeps the optimiser away
# from overflow in gammaln/betaln; an estimate on a bound is reported as not converged.
_LOG_BOUND = 25.0

# Near a = 1 the closed form (a + b + x − 1)/(a − 1) · [1 − …] is 0/0 (the limit is finite) and
# loses digits: interpolate linearly between a = 1 ± _A_ONE_STEP instead, exact to O(step²).
_A_ONE_STEP = 1e-4

# Objective value for parameters where the likelihood overflows; never accepted as an optimum.
_INFEASIBLE = 1e300

Array = NDArray[np.float64]
# f(φ, *args) → (mean negative log-likelihood, its gradient in φ = log θ)
Objective = Callable[..., tuple[float, Array]]


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BgNbdParams:
    """BG/NBD parameters: λ ~ Gamma(shape r, rate α), dropout p ~ Beta(a, b) (SPEC.md §5.8)."""

    r: float
    alpha: float
    a: float
    b: float

    def as_array(self) -> Array:
        return np.array([self.r, self.alpha, self.a, self.b], dtype=float)


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma parameters: order value ~ Gamma(p, ν), ν ~ Gamma(shape q, rate v) (§5.8)."""

    p: float
    q: float
    v: float

    def as_array(self) -> Array:
        return np.array([self.p, self.q, self.v], dtype=float)


@dataclass(frozen=True)
class BgNbdFit:
    """A BG/NBD maximum-likelihood fit (SPEC.md §5.8).

    ``std_errors`` holds the asymptotic standard error of each parameter, from the inverse of the
    numerically computed Hessian of the negative log-likelihood at the optimum (NaN when that
    Hessian is not positive definite). ``n_customers`` counts customers, i.e. the sum of weights.
    """

    params: BgNbdParams
    std_errors: BgNbdParams
    log_likelihood: float
    n_customers: int
    converged: bool


@dataclass(frozen=True)
class GammaGammaFit:
    """A Gamma-Gamma maximum-likelihood fit on customers with frequency ≥ 1 (SPEC.md §5.8)."""

    params: GammaGammaParams
    std_errors: GammaGammaParams
    log_likelihood: float
    n_customers: int
    converged: bool


class ClvPrediction(NamedTuple):
    """Per-customer pLTV over the horizon (SPEC.md §5.8); each field is an array, one per customer.

    ``expected_purchases``: expected number of purchases in the horizon (undiscounted).
    ``probability_alive``: P(still active at the end of the calibration period).
    ``clv``: Σ over months m of expected purchases in month m × expected order value / (1 + d)^m.
    """

    expected_purchases: Array
    probability_alive: Array
    clv: Array


# --------------------------------------------------------------------------------------------
# Input checks: errors name the field and the first offending row
# --------------------------------------------------------------------------------------------


def _as_1d(name: str, values: ArrayLike) -> Array:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be one-dimensional (one value per customer); got shape {arr.shape}."
        )
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{name} must be finite; row {bad[0]} is {arr[bad[0]]!r}.")
    return arr


def _fail_where(mask: Array, message: str, values: Array) -> None:
    bad = np.flatnonzero(mask)
    if bad.size:
        raise ValueError(
            f"{message}; row {bad[0]} has {values[bad[0]]!r} ({bad.size} rows in all)."
        )


def _check_rfm(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[Array, Array, Array]:
    x = _as_1d("frequency", frequency)
    t_x = _as_1d("recency", recency)
    big_t = _as_1d("T", T)
    x, t_x, big_t = np.broadcast_arrays(x, t_x, big_t)
    _fail_where(x < 0, "frequency (number of repeat purchases) must be ≥ 0", x)
    _fail_where(
        x != np.round(x), "frequency (number of repeat purchases) must be a whole number", x
    )
    _fail_where(t_x < 0, "recency must be ≥ 0 (time from the first purchase to the last)", t_x)
    _fail_where(
        big_t < 0, "T must be ≥ 0 (time from the first purchase to the end of the period)", big_t
    )
    _fail_where(
        t_x > big_t, "recency must not exceed T (the last purchase lies inside the period)", t_x
    )
    _fail_where(
        (x == 0) & (t_x != 0),
        "recency must be 0 for a customer with frequency 0 (no repeat purchase)",
        t_x,
    )
    # A repeat purchase at time 0 is the first purchase again (same-day purchases count as one);
    # such rows also make the likelihood unbounded as α → 0.
    _fail_where(
        (x > 0) & (t_x == 0),
        "recency must be > 0 for a customer with frequency ≥ 1 (repeat purchases come after the "
        "first; count purchases on the same day as one)",
        t_x,
    )
    return x.astype(float), t_x.astype(float), big_t.astype(float)


def _check_weights(weights: ArrayLike | None, n: int) -> Array:
    if weights is None:
        return np.ones(n)
    w = np.broadcast_to(_as_1d("weights", weights), (n,)).astype(float)
    _fail_where(w < 0, "weights (customer counts per row) must be ≥ 0", w)
    return w


def _check_positive(name: str, value: float) -> float:
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number; got {value!r}.")
    return float(value)


# --------------------------------------------------------------------------------------------
# BG/NBD likelihood
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _BgNbdData:
    """Rows compressed to unique (x, t_x, T) with counts, and x split into its unique values.

    Terms that depend on x alone (gammaln, betaln, digamma) are computed once per distinct x and
    gathered, which is what makes a million customers cheap.
    """

    x_values: Array  # distinct frequencies
    x_index: NDArray[np.intp]  # row → position in x_values
    x: Array
    t_x: Array
    T: Array
    w: Array
    total_weight: float


def _compress_rfm(x: Array, t_x: Array, big_t: Array, w: Array) -> _BgNbdData:
    keep = w > 0
    x, t_x, big_t, w = x[keep], t_x[keep], big_t[keep], w[keep]
    # A lexsort and a run-length pass: several times faster than np.unique(axis=0) on 1M rows.
    order = np.lexsort((big_t, t_x, x))
    x, t_x, big_t, w = x[order], t_x[order], big_t[order], w[order]
    starts = np.flatnonzero(
        np.concatenate(([True], (np.diff(x) != 0) | (np.diff(t_x) != 0) | (np.diff(big_t) != 0)))
    )
    counts = np.add.reduceat(w, starts)
    ux, ut_x, uT = x[starts], t_x[starts], big_t[starts]
    x_values, x_index = np.unique(ux, return_inverse=True)
    return _BgNbdData(
        x_values=x_values,
        x_index=x_index.ravel(),
        x=ux,
        t_x=ut_x,
        T=uT,
        w=counts,
        total_weight=float(counts.sum()),
    )


def _bgnbd_loglik_rows(
    theta: Array, d: _BgNbdData, *, with_grad: bool
) -> tuple[Array, Array | None]:
    """Per-row log-likelihood (FHL 2005 eq. 6) and, optionally, its gradient in θ = (r, α, a, b).

    ln L = ln A1 + ln(A2 + δ(x>0)·A3), combined with log-sum-exp because for a heavy buyer both
    terms underflow long before their sum is negligible.
    """
    r, alpha, a, b = theta
    xv = d.x_values
    has_repeat_v = xv > 0
    # x − 1 appears only in the x > 0 term; use x = 1 in its place elsewhere so betaln stays finite.
    xv1 = np.where(has_repeat_v, xv, 1.0)
    lbeta_ab = sp.betaln(a, b)
    g1 = sp.gammaln(r + xv) - sp.gammaln(r) + r * np.log(alpha)
    g2 = sp.betaln(a, b + xv) - lbeta_ab
    g3 = np.where(has_repeat_v, sp.betaln(a + 1.0, b + xv1 - 1.0) - lbeta_ab, -np.inf)

    i = d.x_index
    rx = r + d.x
    log_at = np.log(alpha + d.T)
    log_atx = np.log(alpha + d.t_x)
    term2 = g2[i] - rx * log_at
    term3 = g3[i] - rx * log_atx
    mix = np.logaddexp(term2, term3)
    ll = g1[i] + mix
    if not with_grad:
        return ll, None

    # Posterior weights of the two terms: w3 = P(dropped out right after the last purchase | data).
    w3 = np.exp(term3 - mix)
    w2 = 1.0 - w3
    dg_r = sp.digamma(r + xv) - sp.digamma(r)
    dg_a = sp.digamma(a + b) - sp.digamma(a + b + xv)
    dg_b = dg_a - sp.digamma(b) + sp.digamma(b + xv)
    inv_bx1 = np.where(has_repeat_v, 1.0 / (b + xv1 - 1.0), 0.0)

    grad = np.empty((4, ll.size))
    grad[0] = dg_r[i] + np.log(alpha) - w2 * log_at - w3 * log_atx
    grad[1] = r / alpha - rx * (w2 / (alpha + d.T) + w3 / (alpha + d.t_x))
    grad[2] = dg_a[i] + w3 / a
    grad[3] = dg_b[i] - w3 * inv_bx1[i]
    return ll, grad


def _bgnbd_objective(phi: Array, d: _BgNbdData) -> tuple[float, Array]:
    """Mean negative log-likelihood in log-parameter space, with its gradient.

    Dividing by the number of customers makes the optimiser's tolerances independent of n.
    """
    theta = np.exp(phi)
    ll, grad = _bgnbd_loglik_rows(theta, d, with_grad=True)
    assert grad is not None
    value = -float(d.w @ ll) / d.total_weight
    g_theta = -(grad @ d.w) / d.total_weight
    if not np.isfinite(value):
        # Steer the line search back instead of aborting on an overflowed trial step.
        return _INFEASIBLE, np.zeros_like(phi)
    return value, g_theta * theta


def _bgnbd_starts(d: _BgNbdData) -> list[Array]:
    """Several starting points spread over plausible shapes; α is scaled to the data's time unit."""
    mean_x = max(float(d.w @ d.x) / d.total_weight, 1e-3)
    mean_t = max(float(d.w @ d.T) / d.total_weight, 1e-3)
    starts = []
    for r, a, b in [(1.0, 1.0, 1.0), (0.5, 0.5, 3.0), (0.25, 2.0, 5.0), (2.0, 0.3, 0.5)]:
        # E[λ] = r/α ≈ repeat purchases per unit time.
        alpha = r * mean_t / mean_x
        starts.append(np.log([r, alpha, a, b]))
    return starts


def _minimise_log_params(
    objective: Objective, starts: list[Array], args: tuple[Any, ...]
) -> tuple[scipy.optimize.OptimizeResult, bool]:
    """L-BFGS-B from each start, keep the best, polish it; also say whether it converged.

    Convergence is judged by the gradient at the result and by staying off the bounds, not by
    L-BFGS-B's own flag, which with tolerances this tight can report a failed line search at
    what is already the optimum to machine precision.
    """
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(starts[0])
    best: scipy.optimize.OptimizeResult | None = None
    for start in starts:
        res = scipy.optimize.minimize(
            objective,
            start,
            args=args,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9},
        )
        if res.fun < _INFEASIBLE and (best is None or res.fun < best.fun):
            best = res
    if best is None:
        raise ValueError("The likelihood could not be evaluated at any starting point.")
    # A second pass from the best point lets L-BFGS-B rebuild its curvature estimate and squeeze out
    # the last digits, which matters for the finite-difference Hessian taken there.
    polished = scipy.optimize.minimize(
        objective,
        best.x,
        args=args,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 2000, "ftol": 1e-16, "gtol": 1e-10},
    )
    if polished.fun <= best.fun:
        best = polished
    _, grad = objective(best.x, *args)
    on_bound = bool(np.any(np.abs(best.x) >= _LOG_BOUND - 1e-6))
    converged = bool(np.max(np.abs(grad)) < 1e-5 and not on_bound)
    return best, converged


def _standard_errors(
    objective: Objective, phi: Array, args: tuple[Any, ...], total_weight: float
) -> Array:
    """Standard errors in θ = exp(φ) from the Hessian of the total negative log-likelihood.

    The Hessian in φ is the central difference of the analytic gradient; at the optimum (zero
    gradient) Cov(θ) = diag(θ) · H_φ⁻¹ · diag(θ) (delta method), so no second derivatives of the
    special functions are needed.
    """
    k = phi.size
    h = 1e-5
    hess = np.empty((k, k))
    for j in range(k):
        step = np.zeros(k)
        step[j] = h
        _, g_plus = objective(phi + step, *args)
        _, g_minus = objective(phi - step, *args)
        hess[:, j] = (g_plus - g_minus) / (2 * h)
    hess = 0.5 * (hess + hess.T) * total_weight
    theta = np.exp(phi)
    try:
        np.linalg.cholesky(hess)
    except np.linalg.LinAlgError:
        return np.full(k, np.nan)
    cov_phi = np.linalg.inv(hess)
    return theta * np.sqrt(np.diag(cov_phi))


def bgnbd_log_likelihood(
    params: BgNbdParams,
    *,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
) -> Array:
    """Per-customer BG/NBD log-likelihood ln L(r, α, a, b | x, t_x, T) (FHL 2005 eq. 6; §5.8)."""
    x, t_x, big_t = _check_rfm(frequency, recency, T)
    theta = params.as_array()
    x_values, x_index = np.unique(x, return_inverse=True)
    d = _BgNbdData(x_values, x_index.ravel(), x, t_x, big_t, np.ones_like(x), float(x.size))
    ll, _ = _bgnbd_loglik_rows(theta, d, with_grad=False)
    return ll


def fit_bgnbd(
    *,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
) -> BgNbdFit:
    """Fit BG/NBD by maximum likelihood (SPEC.md §5.8).

    ``weights`` counts how many customers share each row, so a caller may pass a pre-aggregated
    table; identical rows are compressed here anyway, which is what makes a million customers
    fast (with day-granular times there are far fewer distinct rows than customers).

    Raises ValueError for invalid inputs (the message names the field) and when nobody made a
    repeat purchase: then the likelihood rises without bound towards "nobody ever buys again" and
    no parameters can be estimated. Check ``converged``: on a handful of customers, or data that
    cannot separate the parameters, the maximum lies on the edge of the parameter space (absurd
    values, NaN standard errors) and the fit is reported as not converged.
    """
    x, t_x, big_t = _check_rfm(frequency, recency, T)
    w = _check_weights(weights, x.size)
    if w.sum() <= 0:
        raise ValueError("No customers to fit: the data are empty or every weight is 0.")
    if not np.any((x > 0) & (w > 0)):
        raise ValueError(
            "No customer made a repeat purchase (every frequency is 0): the BG/NBD parameters "
            "cannot be estimated. Use a longer calibration period or more customers."
        )
    d = _compress_rfm(x, t_x, big_t, w)
    best, converged = _minimise_log_params(_bgnbd_objective, _bgnbd_starts(d), (d,))
    se = _standard_errors(_bgnbd_objective, best.x, (d,), d.total_weight)
    if not np.all(np.isfinite(se)):
        converged = False
    theta = np.exp(best.x)
    return BgNbdFit(
        params=BgNbdParams(*map(float, theta)),
        std_errors=BgNbdParams(*map(float, se)),
        log_likelihood=-float(best.fun) * d.total_weight,
        n_customers=int(round(d.total_weight)),
        converged=converged,
    )


# --------------------------------------------------------------------------------------------
# BG/NBD closed forms
# --------------------------------------------------------------------------------------------


def _check_params(params: BgNbdParams) -> tuple[float, float, float, float]:
    return (
        _check_positive("r", params.r),
        _check_positive("alpha", params.alpha),
        _check_positive("a", params.a),
        _check_positive("b", params.b),
    )


def _log_odds_dropped(
    r: float, alpha: float, a: float, b: float, x: Array, t_x: Array, big_t: Array
) -> Array:
    """ln[P(dropped out) / P(alive)] at T; −inf when x = 0 (no repeat purchase, cannot drop)."""
    has_repeat = x > 0
    bx1 = np.where(has_repeat, b + x - 1.0, 1.0)
    lo = np.log(a) - np.log(bx1) + (r + x) * (np.log(alpha + big_t) - np.log(alpha + t_x))
    return np.where(has_repeat, lo, -np.inf)


def probability_alive(
    params: BgNbdParams,
    *,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
) -> Array:
    """P(customer still active at T | x, t_x, T) under BG/NBD (FHL 2005 eq. 13; §5.8).

    A customer with no repeat purchase is alive with probability 1: in BG/NBD dropout can only
    happen right after a repeat purchase.
    """
    r, alpha, a, b = _check_params(params)
    x, t_x, big_t = _check_rfm(frequency, recency, T)
    return sp.expit(-_log_odds_dropped(r, alpha, a, b, x, t_x, big_t))


def _alive_expected_purchases(
    r: float, alpha: float, a: float, b: float, x: Array, big_t: Array, t: Array
) -> Array:
    """E[purchases in (T, T+t] | alive at T, x, T]: (a+b+x−1)/(a−1) · [1 − (1−z)^(a−1) · ₂F₁(…; z)].

    The paper's ((α+T)/(α+T+t))^(r+x) · ₂F₁(r+x, b+x; a+b+x−1; z) with z = t/(α+T+t) multiplies a
    power that underflows by a series that overflows once x or t is large. Euler's transformation
    ₂F₁(A, B; C; z) = (1−z)^(C−A−B) ₂F₁(C−A, C−B; C; z) turns the product into
    (1−z)^(a−1) · ₂F₁(a+b−1−r, a−1; a+b+x−1; z), whose first parameters no longer grow with x.
    """
    if abs(a - 1.0) < _A_ONE_STEP:
        lo = _alive_expected_purchases_closed(r, alpha, 1.0 - _A_ONE_STEP, b, x, big_t, t)
        hi = _alive_expected_purchases_closed(r, alpha, 1.0 + _A_ONE_STEP, b, x, big_t, t)
        share = (a - (1.0 - _A_ONE_STEP)) / (2.0 * _A_ONE_STEP)
        return lo + share * (hi - lo)
    return _alive_expected_purchases_closed(r, alpha, a, b, x, big_t, t)


def _alive_expected_purchases_closed(
    r: float, alpha: float, a: float, b: float, x: Array, big_t: Array, t: Array
) -> Array:
    c = a + b + x - 1.0
    z = t / (alpha + big_t + t)
    series = sp.hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
    tail = np.exp((a - 1.0) * np.log1p(-z)) * series
    out = c / (a - 1.0) * (1.0 - tail)
    # Tiny negatives are rounding in 1 − tail for short windows; anything else means trouble.
    bad = ~np.isfinite(out) | (out < -1e-9)
    out = np.maximum(out, 0.0)
    if np.any(bad):
        # scipy's hyp2f1 can lose accuracy in corners of parameter space; integrate instead.
        for k in np.flatnonzero(bad):
            out[k] = _alive_expected_purchases_quad(r, alpha, a, b, x[k], big_t[k], t[k])
    return np.where(t > 0, out, 0.0)


def _alive_expected_purchases_quad(
    r: float, alpha: float, a: float, b: float, x: float, big_t: float, t: float
) -> float:
    """The same expectation by direct integration over the posterior of p (slow, robust).

    Given alive at T, λ | data ~ Gamma(r+x, α+T) and p | data ~ Beta(a, b+x); for fixed λ, p the
    expected count in t is (1 − e^(−λpt))/p, and integrating λ out gives (1 − (1 + pt/(α+T))^−(r+x))/p.
    """
    scale = t / (alpha + big_t)
    log_norm = sp.betaln(a, b + x)

    def integrand(p: float) -> float:
        g = -np.expm1(-(r + x) * np.log1p(p * scale)) / p if p > 0 else (r + x) * scale
        return g * np.exp((a - 1.0) * np.log(p) + (b + x - 1.0) * np.log1p(-p) - log_norm)

    # For long windows the integrand bends sharply near p = 1/scale: tell quad where.
    points = [1.0 / scale] if scale > 1.0 else None
    value, _ = scipy.integrate.quad(integrand, 0.0, 1.0, limit=200, points=points)
    return float(value)


def conditional_expected_purchases(
    params: BgNbdParams,
    *,
    t: ArrayLike,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
) -> Array:
    """E[purchases in (T, T+t] | x, t_x, T] under BG/NBD (FHL 2005 eq. 10; SPEC.md §5.8).

    = P(alive | x, t_x, T) × expected purchases in t of an alive customer; ``t`` is in the same
    unit as ``recency`` and ``T`` and may be an array (broadcast against the customers).
    """
    r, alpha, a, b = _check_params(params)
    x, t_x, big_t = _check_rfm(frequency, recency, T)
    horizon = _as_1d("t", t)
    _fail_where(horizon < 0, "t (length of the forecast window) must be ≥ 0", horizon)
    x, t_x, big_t, horizon = np.broadcast_arrays(x, t_x, big_t, horizon)
    alive = sp.expit(-_log_odds_dropped(r, alpha, a, b, x, t_x, big_t))
    return alive * _alive_expected_purchases(r, alpha, a, b, x, big_t, horizon.astype(float))


def expected_purchases(params: BgNbdParams, *, t: ArrayLike) -> Array:
    """Unconditional E[X(t)]: repeat purchases in (0, t] of a new customer (FHL 2005 eq. 9; §5.8).

    It is the conditional expectation of a customer seen at T = 0 with no purchase yet; it is
    infinite in the limit t → ∞ when a ≤ 1 (E[1/p] diverges), but finite for every finite t.
    """
    r, alpha, a, b = _check_params(params)
    horizon = _as_1d("t", t)
    _fail_where(horizon < 0, "t (length of the period) must be ≥ 0", horizon)
    zeros = np.zeros_like(horizon)
    return _alive_expected_purchases(r, alpha, a, b, zeros, zeros, horizon)


# --------------------------------------------------------------------------------------------
# Gamma-Gamma
# --------------------------------------------------------------------------------------------


def _check_spend(frequency: ArrayLike, monetary_value: ArrayLike) -> tuple[Array, Array]:
    x = _as_1d("frequency", frequency)
    m = _as_1d("monetary_value", monetary_value)
    x, m = np.broadcast_arrays(x, m)
    _fail_where(x < 0, "frequency (number of repeat purchases) must be ≥ 0", x)
    _fail_where(
        x != np.round(x), "frequency (number of repeat purchases) must be a whole number", x
    )
    _fail_where(
        (x > 0) & (m <= 0),
        "monetary_value (mean value of the repeat purchases) must be > 0 when frequency ≥ 1; "
        "the Gamma-Gamma model has no zero-value orders, so drop them before averaging",
        m,
    )
    return x.astype(float), m.astype(float)


@dataclass(frozen=True)
class _SpendData:
    """Repeat customers' spend, with what does not depend on the parameters computed once."""

    x_values: Array  # distinct frequencies: gammaln/digamma terms are evaluated per x, not per row
    x_index: NDArray[np.intp]
    x: Array
    log_m: Array
    xm: Array  # x · z̄, the customer's total repeat spend
    x_log_xm: Array  # x · ln(x · z̄)
    w: Array
    total_weight: float


def _spend_data(x: Array, m: Array, w: Array) -> _SpendData:
    x_values, x_index = np.unique(x, return_inverse=True)
    xm = x * m
    return _SpendData(
        x_values=x_values,
        x_index=x_index.ravel(),
        x=x,
        log_m=np.log(m),
        xm=xm,
        x_log_xm=x * np.log(xm),
        w=w,
        total_weight=float(w.sum()),
    )


def _gg_loglik_rows(theta: Array, d: _SpendData, *, with_grad: bool) -> tuple[Array, Array | None]:
    """ln f(z̄ | p, q, v, x): z̄ | ν ~ Gamma(px, νx), ν ~ Gamma(q, v) integrated out (note eq. 4).

    ln f = lnΓ(px+q) − lnΓ(px) − lnΓ(q) + q ln v + (px − 1) ln z̄ + px ln x − (px+q) ln(v + x z̄).
    """
    p, q, v = theta
    xv = d.x_values
    pxv = p * xv
    g = sp.gammaln(pxv + q) - sp.gammaln(pxv) - sp.gammaln(q)
    i = d.x_index
    px = p * d.x
    log_vxm = np.log(v + d.xm)
    # (px − 1) ln z̄ + px ln x = p · x ln(x z̄) − ln z̄
    ll = g[i] + q * np.log(v) + p * d.x_log_xm - d.log_m - (px + q) * log_vxm
    if not with_grad:
        return ll, None
    dg = sp.digamma(pxv + q)
    grad = np.empty((3, ll.size))
    grad[0] = (xv * (dg - sp.digamma(pxv)))[i] + d.x_log_xm - d.x * log_vxm
    grad[1] = (dg - sp.digamma(q))[i] + np.log(v) - log_vxm
    grad[2] = q / v - (px + q) / (v + d.xm)
    return ll, grad


def _gg_objective(phi: Array, d: _SpendData) -> tuple[float, Array]:
    """Mean negative Gamma-Gamma log-likelihood in log-parameter space, with its gradient."""
    theta = np.exp(phi)
    ll, grad = _gg_loglik_rows(theta, d, with_grad=True)
    assert grad is not None
    value = -float(d.w @ ll) / d.total_weight
    if not np.isfinite(value):
        return _INFEASIBLE, np.zeros_like(phi)
    return value, -(grad @ d.w) / d.total_weight * theta


def fit_gamma_gamma(
    *,
    frequency: ArrayLike,
    monetary_value: ArrayLike,
    weights: ArrayLike | None = None,
) -> GammaGammaFit:
    """Fit the Gamma-Gamma spend model by maximum likelihood (SPEC.md §5.8).

    Only customers with frequency ≥ 1 carry information about spend per repeat purchase; the
    others are left out (and not counted in ``n_customers``). The model assumes spend is
    independent of purchase frequency: check that correlation before trusting pLTV.
    """
    x, m = _check_spend(frequency, monetary_value)
    w = _check_weights(weights, x.size)
    keep = (x > 0) & (w > 0)
    if not np.any(keep):
        raise ValueError(
            "No customer has frequency ≥ 1: the Gamma-Gamma model needs repeat purchases to "
            "estimate spend per purchase."
        )
    d = _spend_data(x[keep], m[keep], w[keep])
    total = d.total_weight
    mean_m = float(d.w @ np.exp(d.log_m)) / total
    starts = []
    for p, q in [(1.0, 1.0), (5.0, 3.0), (10.0, 5.0), (0.5, 10.0)]:
        # E[z] = p·v/(q−1) for q > 1: pick v to match the observed mean spend.
        v = mean_m * max(q - 1.0, 0.5) / p
        starts.append(np.log([p, q, v]))
    best, converged = _minimise_log_params(_gg_objective, starts, (d,))
    se = _standard_errors(_gg_objective, best.x, (d,), total)
    if not np.all(np.isfinite(se)):
        converged = False
    theta = np.exp(best.x)
    return GammaGammaFit(
        params=GammaGammaParams(*map(float, theta)),
        std_errors=GammaGammaParams(*map(float, se)),
        log_likelihood=-float(best.fun) * total,
        n_customers=int(round(total)),
        converged=converged,
    )


def conditional_expected_order_value(
    params: GammaGammaParams,
    *,
    frequency: ArrayLike,
    monetary_value: ArrayLike,
) -> Array:
    """E[order value | x, z̄] = (v + x·z̄)·p / (p·x + q − 1) (Fader & Hardie 2013 eq. 5; §5.8).

    A weighted mean of the population mean p·v/(q−1) and the customer's own z̄; with x = 0 it is
    the population mean. Requires q > 1, else the population mean spend is infinite.
    """
    p = _check_positive("p", params.p)
    q = _check_positive("q", params.q)
    v = _check_positive("v", params.v)
    if q <= 1.0:
        raise ValueError(
            f"q must be > 1 for the expected order value to be finite; got q = {q!r}. "
            "The spend data are too heavy-tailed for the Gamma-Gamma model."
        )
    x, m = _check_spend(frequency, monetary_value)
    m = np.where(x > 0, m, 0.0)  # z̄ is meaningless without repeat purchases
    return p * (v + x * m) / (p * x + q - 1.0)


# --------------------------------------------------------------------------------------------
# pLTV
# --------------------------------------------------------------------------------------------


def predict_clv(
    bgnbd: BgNbdParams,
    gamma_gamma: GammaGammaParams,
    *,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary_value: ArrayLike,
    time_unit: float = 7.0,
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.01,
) -> ClvPrediction:
    """Per-customer pLTV = discounted BG/NBD purchases × Gamma-Gamma order value (SPEC.md §5.8).

    ``time_unit`` is the number of days in one model period: the unit of ``recency`` and ``T`` and
    of the BG/NBD fit (7.0 for weeks, as in CDNOW; 1.0 for days). Month m ends at
    m × 30.4375 / time_unit periods after T (30.4375 = 365.25 / 12 days, a mean month), and

        pLTV = Σ_{m=1..H} (E[X(T, m)] − E[X(T, m−1)]) × E[order value] / (1 + d)^m

    where E[X(T, m)] is the expected number of purchases in the first m months after T, i.e. the
    purchases of month m are discounted as if paid at its end.
    """
    time_unit = _check_positive("time_unit", time_unit)
    if int(horizon_months) != horizon_months or horizon_months < 1:
        raise ValueError(f"horizon_months must be a whole number ≥ 1; got {horizon_months!r}.")
    if not np.isfinite(monthly_discount_rate) or monthly_discount_rate <= -1:
        raise ValueError(
            f"monthly_discount_rate must be > −1 (0.01 means 1 % a month); got {monthly_discount_rate!r}."
        )
    x, t_x, big_t = _check_rfm(frequency, recency, T)
    _, m = _check_spend(x, np.broadcast_to(_as_1d("monetary_value", monetary_value), x.shape))
    value = conditional_expected_order_value(gamma_gamma, frequency=x, monetary_value=m)

    r, alpha, a, b = _check_params(bgnbd)
    alive = sp.expit(-_log_odds_dropped(r, alpha, a, b, x, t_x, big_t))
    months = np.arange(int(horizon_months) + 1)
    t_months = months * DAYS_PER_MONTH / time_unit
    # Given alive, the forecast depends on (x, T) only, and hyp2f1 is the expensive part: evaluate
    # it once per distinct (x, T) and month, then gather. cumulative[i, m] = E[X in months 1..m].
    pairs, inverse = np.unique(np.stack([x, big_t], axis=1), axis=0, return_inverse=True)
    n_pairs, n_months = pairs.shape[0], months.size
    if_alive = _alive_expected_purchases(
        r,
        alpha,
        a,
        b,
        np.repeat(pairs[:, 0], n_months),
        np.repeat(pairs[:, 1], n_months),
        np.tile(t_months, n_pairs),
    ).reshape(n_pairs, n_months)
    cumulative = alive[:, None] * if_alive[inverse.ravel()]
    per_month = np.diff(cumulative, axis=1)
    discount = (1.0 + monthly_discount_rate) ** -months[1:]
    return ClvPrediction(
        expected_purchases=cumulative[:, -1],
        probability_alive=alive,
        clv=(per_month @ discount) * value,
    )
