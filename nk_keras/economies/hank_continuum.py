"""hank_zlb's continuum of households in the sequence space (the `sequence-jacobian` package).

The same households, firms, rule and government as `hank.py`'s finite-L economy (MODEL.md
section 10), with a continuum of households (L -> infinity) and the rule linear around its
steady state, where the ZLB does not bind: the first-order impulse responses that the network
economy must approach for small shocks as L grows. Built with the package's own grids, chain
and EGM, so its steady state is an independent check of `hank.steady_state`'s calibration.

Needs the `hank` extra (`pip install nk-keras[hank]`: sequence-jacobian and numba); imported
only where those responses are asked for.
"""

import functools
import math

import numpy as np
import sequence_jacobian as sj

from nk_keras.economies.hank import HANK_FIXED, STEADY_REAL_RATE, steady_state_hours

HORIZON = 300            # the sequence space's truncation (quarters)
GRID = {"n_b": 1000, "max_b": 250.0}


def household_init(b_grid, y, r_ex):
  Va = r_ex / (0.1 * (r_ex * b_grid[None, :] + y[:, None]))   # consuming a tenth of cash
  return Va


@sj.het(exogenous="Pi", policy="b", backward="Va", backward_init=household_init)
def household(Va_p, b_grid, y, r_ex, beta, zeta):
  """One step of EGM with log utility and the preference shock in the Euler equation,
  exp(zeta) / c = beta E[exp(zeta') r_ex' / c']: `Va` is the marginal value of bonds carried in,
  exp(zeta) r_ex / c, and `Va_p` its expectation over tomorrow's productivity."""
  c_choosing = np.exp(zeta) / (beta * Va_p)        # consumption that makes each b' on the grid
  cash = r_ex * b_grid[None, :] + y[:, None]
  b = sj.interpolate.interpolate_y(c_choosing + b_grid, cash, b_grid)
  sj.misc.setmin(b, b_grid[0])                      # the borrowing limit
  c = cash - b
  Va = np.exp(zeta) * r_ex / c        # the package reads the outputs' names from this return
  return Va, b, c


def income(N, r_ex, Bbar, e_grid):
  """Each productivity state's income, e (N - T), taxes paying the bonds' real interest."""
  y = e_grid * (N - (r_ex - 1.0) * Bbar)
  return y


def grids(e_persistence, e_std, e_states, max_b, n_b):
  e_grid, pi_e, Pi = sj.grids.markov_rouwenhorst(e_persistence, e_std, int(e_states))
  b_grid = sj.grids.agrid(max_b, int(n_b))
  return e_grid, pi_e, Pi, b_grid


@sj.simple
def rule(Pi, N, theta_pi, theta_y, Rbar, Pibar, Ybar):
  """The rule without the ZLB (it does not bind near the steady state) and the ex-post real
  return on bonds carried in, R_{t-1} / Pi_t."""
  R = Rbar * (Pi / Pibar) ** theta_pi * (N / Ybar) ** theta_y
  r_ex = R(-1) / Pi
  return R, r_ex


@sj.simple
def nkpc(Pi, N, R, Pibar, phi, eps, eta, sigma, chi):
  """hank.py's (rank_zlb's) Rotemberg NKPC with marginal cost chi N^(eta + sigma)."""
  p, p1 = Pi / Pibar, Pi(+1) / Pibar
  nkpc_res = ((p - 1) * p - (eps - 1) / phi * (chi * eps / (eps - 1) * N ** (eta + sigma) - 1)
              - Pibar / R * p1 ** 2 * N(+1) / N * (p1 - 1))
  return nkpc_res


@sj.simple
def bond_market(B, Bbar):
  bond_mkt = B - Bbar
  return bond_mkt


@functools.lru_cache(maxsize=1)
def model():
  hh = household.add_hetinputs([income, grids])
  return sj.create_model([hh, rule, nkpc, bond_market], name="hank_zlb continuum")


def steady_state(theta):
  """The continuum's steady state at `theta` (dict of the five parameters): rank_zlb's
  deterministic one (`hank.steady_state_hours`), `beta` calibrated to clear the bond market at
  its real rate 1 / 0.9975. SSJ's steady-state dict."""
  f = HANK_FIXED
  pi, N = steady_state_hours(theta["theta_pi"], theta["theta_y"], theta["phi"])
  Pibar = math.exp(f["log_Pibar"])
  Pi = Pibar * math.exp(pi)
  calibration = {
      **{k: f[k] for k in ("eps", "eta", "sigma", "chi", "Bbar", "Ybar", "e_persistence",
                           "e_std", "e_states")},
      **GRID, **theta, "Pi": Pi, "N": N, "Pibar": Pibar, "Rbar": Pibar / f["beta"],
      "zeta": 0.0, "r_ex": STEADY_REAL_RATE, "R": STEADY_REAL_RATE * Pi}
  return model().solve_steady_state(calibration, {"beta": (0.98, 0.995)}, {"bond_mkt": 0.0},
                                    solver="brentq", ttol=1e-12)


def impulse_response(theta, shock=-1.0, horizon=40):
  """First-order responses to a preference innovation of `shock` std at `theta` (dict of the
  five parameters): dict `N`, `Pi` (log deviations from the steady state, as the network
  economy's `simulation.values`), `R` (log) -> `[horizon]`, period 0 the impact."""
  per_std = _responses(tuple(sorted(theta.items())))
  return {name: shock * path[:horizon] for name, path in per_std.items()}


@functools.lru_cache(maxsize=8)
def _responses(theta_items):
  """Responses to a one-std innovation over the whole truncation, solved once per theta (a
  few seconds: the steady state's EGM and the household block's Jacobian)."""
  theta = dict(theta_items)
  ss = steady_state(theta)
  zeta = theta["sigma_zeta"] * theta["rho_zeta"] ** np.arange(HORIZON)
  irf = model().solve_impulse_linear(ss, ["Pi", "N"], ["nkpc_res", "bond_mkt"],
                                     {"zeta": zeta})
  return {name: np.asarray(irf[name]) / ss[name] for name in ("N", "Pi", "R")}
