"""A one-asset HANK with a zero lower bound (../shared/MODEL.md section 10): its continuum steady state.

The first piece of the heterogeneous-agent economy (issue 26): the calibration that every later
piece (the finite-L network economy, its checks against the continuum) takes as given. The
household discount factor `beta` is not a free parameter: it is set so that the continuum
economy's deterministic steady state clears the bond market (mean wealth `Bbar`) at the rule's
steady real rate `Rbar / Pibar = 1 / 0.9975`; precautionary saving puts it below 0.9975.

Households: log utility (rank_zlb's `sigma = 1`), productivity `e` on a Rouwenhorst chain
(3 states, persistence 0.966, cross-sectional std of log e 0.5, mean 1), bonds `b >= 0`,
budget `c + b' = r b + e (Y - T)` with `T = (r - 1) Bbar` and `Y = Ybar`. Policies by the
endogenous grid method (Carroll) on a wealth grid dense near the borrowing limit; the stationary
distribution by the histogram method (Young): each choice `b'` is split between the two grid
points around it in proportion to its distance, so the distribution's mean wealth is exact.
"""

import math

import numpy as np
from scipy import optimize, sparse

from nk_keras.economies.rank_zlb import FIXED

HANK_FIXED = {**FIXED, "Bbar": 5.6, "e_states": 3, "e_persistence": 0.966, "e_std": 0.5}
STEADY_REAL_RATE = 1.0 / FIXED["beta"]    # Rbar / Pibar: the rule's steady real rate


def rouwenhorst(n, rho, std):
  """Rouwenhorst's chain for an AR(1) in logs with persistence `rho` and stationary std `std`:
  levels `e` `[n]` normalised to mean 1, transition `P` `[n, n]` (rows: today) and the
  stationary law `pi` `[n]` (binomial)."""
  p = (1.0 + rho) / 2.0
  P = np.array([[1.0]])
  for m in range(2, n + 1):
    Z = np.zeros((m, m))
    Z[:-1, :-1] += p * P
    Z[:-1, 1:] += (1 - p) * P
    Z[1:, :-1] += (1 - p) * P
    Z[1:, 1:] += p * P
    Z[1:-1] /= 2.0   # the recursion counts interior rows twice
    P = Z
  pi = np.array([math.comb(n - 1, k) for k in range(n)], float) / 2.0 ** (n - 1)
  e = np.exp(np.linspace(-1.0, 1.0, n) * np.sqrt(n - 1) * std)
  return e / (pi @ e), P, pi


def wealth_grid(n, top):
  """`[n]` points from the borrowing limit 0 to `top`, cubically dense near 0 where the
  policy bends."""
  return top * np.linspace(0.0, 1.0, n) ** 3


def household_policy(beta, r, income, P, b, tol=1e-11, max_iter=20000):
  """Savings `b'` `[S, n]` at wealth `b` `[n]` and productivity state (income `[S]`), by the
  endogenous grid method with log utility."""
  c = np.maximum(r * b[None, :] + income[:, None] - b[0], 1e-8)
  for _ in range(max_iter):
    c_today = 1.0 / (beta * r * (P @ (1.0 / c)))                # Euler, with b' = b on the grid
    b_today = (c_today + b[None, :] - income[:, None]) / r      # wealth that chooses b'
    # Below the lowest endogenous point the household is constrained: b' = 0.
    b_next = np.stack([np.interp(b, b_today[s], b, left=b[0]) for s in range(len(income))])
    c_new = r * b[None, :] + income[:, None] - b_next
    if np.max(np.abs(c_new - c)) < tol:
      return b_next
    c = c_new
  raise RuntimeError(f"household policy did not converge in {max_iter} iterations")


def stationary_distribution(b_next, P, b, tol=1e-13, max_iter=100000):
  """The stationary law `[S, n]` of (productivity, wealth at the start of the period) given the
  savings policy `b_next` `[S, n]`, by Young's lottery onto the grid `b` and power iteration."""
  S, n = b_next.shape
  i = np.clip(np.searchsorted(b, b_next, side="right") - 1, 0, n - 2)
  w = np.clip((b_next - b[i]) / (b[i + 1] - b[i]), 0.0, 1.0)
  rows = np.arange(S * n)
  # Transition over flattened (s, b) states: wealth by the lottery, then productivity by P.
  cols_lo = (i + np.arange(S)[:, None] * n).ravel()
  lottery = sparse.csr_matrix((np.concatenate([(1 - w).ravel(), w.ravel()]),
                               (np.concatenate([rows, rows]),
                                np.concatenate([cols_lo, cols_lo + 1]))), shape=(S * n, S * n))
  T = (lottery @ sparse.kron(sparse.csr_matrix(P), sparse.identity(n))).T.tocsr()
  D = np.full(S * n, 1.0 / (S * n))
  for _ in range(max_iter):
    D_new = T @ D
    if np.max(np.abs(D_new - D)) < tol:
      return D_new.reshape(S, n)
    D = D_new
  raise RuntimeError(f"stationary distribution did not converge in {max_iter} iterations")


def steady_state(n_grid=500, top=250.0, fixed=HANK_FIXED):
  """The continuum economy's steady state, `beta` calibrated to clear the bond market: a dict
  with `beta`, `share_at_limit` (households choosing b' = 0), `wealth_by_state` (mean b' by
  productivity state), `wealth_gini`, the grid and the stationary law `[S, n]`."""
  e, P, pi = rouwenhorst(fixed["e_states"], fixed["e_persistence"], fixed["e_std"])
  r, Bbar = STEADY_REAL_RATE, fixed["Bbar"]
  income = e * (fixed["Ybar"] - (r - 1.0) * Bbar)
  b = wealth_grid(n_grid, top)

  def solve(beta):
    b_next = household_policy(beta, r, income, P, b)
    D = stationary_distribution(b_next, P, b)
    return b_next, D

  def excess_saving(beta):
    b_next, D = solve(beta)
    return np.sum(D * b_next) - Bbar

  # Bracketed by a beta that saves too little and one that saves several times Bbar (nearer
  # 1/r, where wealth has no steady state, policies converge ever more slowly).
  beta = optimize.brentq(excess_saving, 0.98, 0.995, xtol=1e-12)
  b_next, D = solve(beta)
  saved = D * b_next
  order = np.argsort(b_next, axis=None)
  mass, wealth = D.ravel()[order], b_next.ravel()[order]
  lorenz = np.cumsum(mass * wealth) / np.sum(mass * wealth)
  gini = 1.0 - np.sum(mass * (lorenz + np.concatenate([[0.0], lorenz[:-1]])))
  return {"beta": beta, "share_at_limit": float(np.sum(D * (b_next <= 0.0))),
          "share_at_limit_by_state": np.sum(D * (b_next <= 0.0), axis=1),
          "wealth_by_state": saved.sum(axis=1) / D.sum(axis=1), "wealth_gini": gini,
          "productivity": e, "transition": P, "grid": b, "savings": b_next,
          "distribution": D}
