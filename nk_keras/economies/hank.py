"""A one-asset HANK with a zero lower bound (../shared/MODEL.md section 10): `hank_zlb`.

L households, each with bonds `b >= 0` carried into the period and a productivity level `e` on
a Rouwenhorst chain (3 states, persistence 0.966, cross-sectional std of log e 0.5, mean 1);
rank_zlb's firms (Rotemberg NKPC, marginal cost chi N^(eta + sigma)), rule with the ZLB and
preference shock; rank_zlb's five parameters as pseudo-states. Income shares follow productivity,
normalised by this period's sample mean, so markets clear exactly for any L.

The continuum steady state comes first: the household discount factor `beta` is not a free
parameter but set so that the continuum economy's deterministic steady state clears the bond
market (mean wealth `Bbar`) at the rule's steady real rate `Rbar / Pibar = 1 / 0.9975`;
precautionary saving puts it below 0.9975. Households: log utility (rank_zlb's `sigma = 1`),
budget `c + b' = r b + e (Y - T)` with `T = (r - 1) Bbar` and `Y` rank_zlb's deterministic
steady state (`steady_state_hours`, 0.05 % below Ybar: paid Ybar, beta would be 2e-6 lower,
off MODEL.md's and sequence-jacobian's calibration, tests/test_hank.py). Policies by the
endogenous grid method (Carroll) on a wealth grid dense near the borrowing limit; the stationary
distribution by the histogram method (Young): each choice `b'` is split between the two grid
points around it in proportion to its distance, so the distribution's mean wealth is exact. Its
savings policy is where the network starts (`policy_guess`) and its distribution is where
training's simulations start (`draw_state`).

The finite-L economy. State: `zeta`, `R_lag` (the gross rate set last period) and the agent set
`(b_i, e_i)`. Policies: log(Pi / Pibar) and each household's savings share `y_i = b'_i / cash_i`
of its cash on hand `cash_i = (R_lag / Pi) b_i + (e_i / ebar)(N - T)`; hours follow from the goods
market, `N = mean_i c_i` (solved in closed form: cash is linear in N), so the bond market
`mean_i b'_i = Bbar` holds by construction whenever it held last period. Residuals: the NKPC
(rank_zlb's, as a relative error of hours) and per household the Fischer-Burmeister function of
the Euler gap `1 - beta E[exp(zeta' - zeta) (R / Pi') (c'/c)^-sigma]` (>= 0, a relative
consumption error) and the savings share (>= 0): zero iff the Euler equation holds or the
household is at the limit. In the loss the households' residuals weigh 1/L each (regimes.py).

With one productivity state and beta 0.9975 (`risk=False`) every household holds Bbar and the
aggregates are rank_zlb's (the collapse, tests/test_hank.py).
"""

import functools
import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import optimize, sparse

from nk_keras import simulation
from nk_keras.economies.base import Economy
from nk_keras.economies.rank_zlb import FIXED, RankZLB
from nk_keras.errors import UserError
from nk_keras.reference import Reference

tfd = tfp.distributions

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


def steady_state_hours(theta_pi, theta_y, phi, fixed=HANK_FIXED):
  """rank_zlb's deterministic steady state, which the HANK's is (MODEL.md section 10):
  `(pi, N)`, log(Pi / Pibar) and hours where the real rate is 1 / 0.9975 (so the rule says
  `(theta_pi - 1) pi + theta_y log N = 0`) and the NKPC holds with inflation constant."""
  f = fixed
  pi_of = lambda log_n: -theta_y * log_n / (theta_pi - 1)

  def nkpc(log_n):
    pi = pi_of(log_n)
    return (math.expm1(pi) * math.exp(pi) * (1 - f["beta"]) - (f["eps"] - 1) / phi
            * math.expm1((f["eta"] + f["sigma"]) * log_n
                         + math.log(f["chi"] * f["eps"] / (f["eps"] - 1))))
  log_n = optimize.brentq(nkpc, -0.05, 0.05, xtol=1e-15)
  return pi_of(log_n), math.exp(log_n)


def steady_state(n_grid=500, top=250.0, fixed=HANK_FIXED):
  """The continuum economy's steady state, `beta` calibrated to clear the bond market: a dict
  with `beta`, `share_at_limit` (households choosing b' = 0), `wealth_by_state` (mean b' by
  productivity state), `wealth_gini`, the grid and the stationary law `[S, n]`."""
  e, P, pi = rouwenhorst(fixed["e_states"], fixed["e_persistence"], fixed["e_std"])
  r, Bbar = STEADY_REAL_RATE, fixed["Bbar"]
  income = e * (calibrated_hours(fixed) - (r - 1.0) * Bbar)
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


def calibrated_hours(fixed=HANK_FIXED):
  """Steady-state hours at the calibration, where `beta` is calibrated once (across the box
  they move by under 1e-4)."""
  p = dict(zip(RankZLB.param_names, RankZLB.calibration))
  return steady_state_hours(p["theta_pi"], p["theta_y"], p["phi"], fixed)[1]


DEFAULT_AGENTS = 50
GRID_POINTS = 1000      # the continuum calibration's wealth grid (beta moves 3e-6 from 500)
GRID_TOP = 250.0
# A preference innovation small enough for first order (the ZLB binds in ~1 % of ergodic
# states), large enough to read in float32.
SMALL_SHOCK = -0.1
AGGREGATE_CHAINS = 1024  # ergodic paths of the report's aggregates (ZLB share: +-1 pp)
Y_MAX = 0.999           # the largest savings share: consumption stays positive
SHARE_SCALE = 0.02      # the network's unit of a savings share's departure from the steady state
LOG_RBAR = FIXED["log_Pibar"] - math.log(FIXED["beta"])


def normal_cdf(x):
  return 0.5 * tf.math.erfc(-x / math.sqrt(2.0))


@functools.lru_cache(maxsize=2)
def starting_point(risk=True):
  """What the finite-L economy takes from its continuum (or, without risk, its representative)
  steady state: `beta`, productivity levels `e` `[S]`, transition `P` `[S, S]`, the wealth grid
  `b` `[n]`, the savings share `y` `[S, n]` chosen there, the stationary law `D` `[S, n]` and
  its wealth Gini.

  Without risk (one productivity state, beta 0.9975 = 1 / r) any wealth is a steady state: the
  household keeps it (`y = b / cash`), and everyone starts at Bbar."""
  r, f = STEADY_REAL_RATE, HANK_FIXED
  if risk:
    ss = steady_state(n_grid=GRID_POINTS, top=GRID_TOP)
    beta, e, P, b, D = (ss["beta"], ss["productivity"], ss["transition"], ss["grid"],
                        ss["distribution"])
    saved, gini = ss["savings"], ss["wealth_gini"]
  else:
    beta, e, P = FIXED["beta"], np.ones(1), np.ones((1, 1))
    b = wealth_grid(GRID_POINTS, GRID_TOP)
    saved = b[None, :]
    D = np.zeros((1, len(b)))
    D[0, np.searchsorted(b, f["Bbar"])] = 1.0
    gini = 0.0
  cash = r * b[None, :] + e[:, None] * (calibrated_hours(f) - (r - 1.0) * f["Bbar"])
  return {"beta": beta, "e": e, "P": P, "b": b, "y": saved / cash, "D": D, "gini": gini}


class HankZLB(Economy):
  """`n_agents` households (`economies.get`'s `agents`, the train app's --agents)."""

  name = "hank_zlb"
  n_agents = DEFAULT_AGENTS
  risk = True             # idiosyncratic productivity risk; without it, rank_zlb
  param_names = RankZLB.param_names
  box_low, box_high, calibration = RankZLB.box_low, RankZLB.box_high, RankZLB.calibration
  prior_mean, prior_std = RankZLB.prior_mean, RankZLB.prior_std
  # rank_zlb's existence region: the aggregates of the collapse are rank_zlb's; the HANK's own
  # region is not measured.
  domain_rule = RankZLB.domain_rule
  agent_states = ("b", "e")
  agent_policies = ("y",)
  agent_residuals = ("Euler",)
  agent_outputs = ("c", "b_next")
  endogenous_states = ("R_lag", "b")
  normalizations = ("centred",)
  weightings = ("none",)      # residuals are unit-free: relative errors of consumption, hours
  error_shape = "today"
  perturbation_scales = False
  constraint = "ZLB"
  counterpart = "rank_zlb"   # does inequality change a ZLB recession? simulate's GIRFs show it
  eval_theta = 20
  # States drawn afresh at every step ("fresh": the continuum's distribution of households):
  # simulated with an untrained policy, as "stepping" does, a few households' economy swings into
  # states where the poorest cannot pay their taxes.
  training_defaults = {"regime": "fresh", "normalization": "centred", "weighting": "none",
                       "iterations": 10_000, "batch": 64, "mc": 8, "stratified": True,
                       "unbiased": True}
  labels = {**RankZLB.labels, "R_lag": "R_{t-1}, last period's rate", "b": "b, bonds",
            "e": "e, productivity", "c": "c, consumption", "b_next": "b', bonds saved",
            "y": "y, savings share of cash on hand"}
  display_units = {**RankZLB.display_units, "R_lag": (400.0, -1.0, "annualised rate (%)")}
  observables = RankZLB.observables
  observes_previous = True
  observable_units = RankZLB.observable_units

  def __init__(self, prior=None, n_agents=None):
    n_agents = n_agents or self.n_agents
    if n_agents < 2:
      raise UserError(f"economy {self.name!r} needs at least 2 households, got {n_agents}")
    self.n_agents = n_agents
    start = starting_point(self.risk)
    self.fixed = {**HANK_FIXED, "beta": start["beta"]}
    L = range(n_agents)
    self.state_names = ("zeta", "R_lag") + tuple(f"{n}_{i}" for i in L for n in self.agent_states)
    self.shock_names = ("eps_zeta",) + tuple(f"eps_e_{i}" for i in L)
    self.policy_names = ("Pi",) + tuple(f"y_{i}" for i in L)
    self.residual_names = ("NKPC",) + tuple(f"Euler_{i}" for i in L)
    # NumPy (float64), made constants of the caller's dtype where used: the economy runs in
    # float32 in training and float64 where simulation tables read the ZLB's slack.
    self._e, self._P = start["e"], start["P"]                           # [S], [S, S]
    self._cdf = np.cumsum(start["P"], axis=1)[:, :-1]                   # [S, S-1]
    self._share = start["y"].ravel()                                    # [S * n]
    self._cdf_D = np.cumsum(start["D"].ravel())                         # [S * n] cells
    self._grid = start["b"]                                             # [n]
    D, b, e = start["D"], start["b"], start["e"]
    mean_b = np.sum(D * b[None, :])
    self._agent_std = [max(np.sqrt(np.sum(D * (b[None, :] - mean_b) ** 2)), 1.0),
                       max(np.sqrt(D.sum(1) @ (e - 1.0) ** 2), 0.1)]
    self._rank = RankZLB()
    super().__init__(prior)

  def default_prior(self):
    return self._rank.default_prior()

  def settings(self):
    """The number of households, and for the record the calibrated `beta` (the continuum's)."""
    return {**super().settings(), "beta": self.fixed["beta"]}

  def domain_reason(self):
    return ("no stable equilibrium of rank_zlb, whose existence region this economy takes as "
            "its own (docs/existence.md)")

  # --- scales: rank_zlb's closed-form linearisation for the aggregates -----------------------

  def _aggregate_scales(self, theta):
    """Ergodic std of zeta, of log R, and of log Pi, each `[batch]` (rank_zlb's linearisation)."""
    a, b = self._rank.linearised(theta)
    std_zeta = self._rank.ergodic_std(theta)[:, 0]
    p = self.unpack(theta)
    return std_zeta, tf.abs(p["theta_pi"] * b + p["theta_y"] * a) * std_zeta, tf.abs(b) * std_zeta

  def ergodic_std(self, theta):
    std_zeta, std_R, _ = self._aggregate_scales(theta)
    agents = tf.tile(tf.constant(self._agent_std, theta.dtype), [self.n_agents])
    return tf.concat([tf.stack([std_zeta, tf.maximum(std_R, 1e-4)], axis=1),
                      tf.tile(agents[None], tf.stack([tf.shape(theta)[0], 1]))], axis=1)

  def state_mean(self, theta):
    centre = [0.0, math.exp(LOG_RBAR)] + [self.fixed["Bbar"], 1.0] * self.n_agents
    return tf.tile(tf.constant(centre, theta.dtype)[None], tf.stack([tf.shape(theta)[0], 1]))

  def policy_scale(self, theta):
    _, _, std_pi = self._aggregate_scales(theta)
    shares = tf.fill(tf.stack([tf.shape(theta)[0], self.n_agents]), SHARE_SCALE)
    return tf.concat([std_pi[:, None], tf.cast(shares, theta.dtype)], axis=1)

  def scales(self, theta):
    return self.ergodic_std(theta), self.policy_scale(theta)

  def residual_scale(self, theta):
    return tf.ones_like(theta[:, 0])

  def policy_guess(self, state, theta):
    """The continuum steady state's savings shares at each household's (b, e), inflation at
    target: `[batch, n_policies]`, where the network starts."""
    _, agents = self.split_agents(state, 2)
    b, e = agents[..., 0], agents[..., 1]                              # [batch, L]
    # Linear in u on the grid, which is uniform in u = (b / top)^(1/3); off zero, where the cube
    # root's slope is infinite.
    n = len(self._grid)
    u = (n - 1) * tf.clip_by_value(b / GRID_TOP, 1e-9, 1.0) ** (1.0 / 3.0)
    left = tf.minimum(tf.floor(u), n - 2)
    row = self.productivity_state(e) * n + tf.cast(left, tf.int32)       # [batch, L]
    shares = tf.constant(self._share, b.dtype)
    y = tf.gather(shares, row) * (left + 1 - u) + tf.gather(shares, row + 1) * (u - left)
    return tf.concat([tf.zeros_like(y[:, :1]), y], axis=1)

  def productivity_state(self, e):
    """The chain's state index (int32, shape of `e`) of productivity levels `e`."""
    return tf.argmin(tf.abs(e[..., None] - tf.constant(self._e, e.dtype)), axis=-1,
                     output_type=tf.int32)

  # --- draws ------------------------------------------------------------------------------

  def draw_state(self, theta, seed):
    z = tf.random.stateless_normal(tf.stack([tf.shape(theta)[0], self.n_state]), seed=seed,
                                   dtype=theta.dtype)
    return self.ergodic_state(theta, z)

  def ergodic_state(self, theta, z):
    """States `[batch, n_state]` from standard normals `z` `[batch, n_state]`: zeta from its
    ergodic law, last period's rate from rank_zlb's linear rule at the zeta before, each
    household's (b, e) from the continuum's stationary law by the inverse CDF of its cells at
    Phi(z) of the household's first column (its second is unused); wealth then scaled so that
    the sample holds exactly Bbar a head, as every period of the economy does."""
    std_zeta, std_R, _ = self._aggregate_scales(theta)
    zeta = std_zeta * z[:, 0]
    R_lag = tf.exp(tf.maximum(LOG_RBAR + std_R * z[:, 1], 0.0))
    _, normals = self.split_agents(z, 2)
    u = normal_cdf(tf.cast(normals[..., 0], tf.float32))                    # [batch, L]
    cell = tf.minimum(tf.searchsorted(tf.constant(self._cdf_D, tf.float32), tf.reshape(u, [-1]),
                                      side="right"), len(self._cdf_D) - 1)
    cell = tf.reshape(cell, tf.shape(u))
    n = len(self._grid)
    b = tf.gather(tf.constant(self._grid, theta.dtype), cell % n)
    e = tf.gather(tf.constant(self._e, theta.dtype), cell // n)
    # A sample with no wealth at all (every household at the limit: a few in 1,000 with three
    # households) cannot hold the bonds: it holds them equally.
    mean = tf.reduce_mean(b, axis=1, keepdims=True)
    Bbar = self.fixed["Bbar"]
    b = tf.where(mean > 0, b * Bbar / tf.maximum(mean, 1e-30), Bbar)
    households = tf.reshape(tf.stack([b, e], axis=-1), tf.stack([tf.shape(b)[0], -1]))
    return tf.concat([tf.stack([zeta, R_lag], axis=1), tf.cast(households, theta.dtype)], 1)

  # --- the economics ----------------------------------------------------------------------

  def allocation(self, state, theta, policies):
    """Who consumes and saves what at `state` `[..., batch, n_state]` under `policies`
    `[..., batch, n_pol]`: dict of `log_N`, `log_R`, `notional` (log R before the ZLB) `[...,
    batch]`, `c`, `b_next` `[..., batch, L]`."""
    f, p = self.fixed, self.unpack(theta)                              # p: each [batch]
    aggregate, agents = self.split_agents(state, 2)
    b, e = agents[..., 0], agents[..., 1]
    pi, y = policies[..., 0], policies[..., 1:]
    share = tf.clip_by_value(y, 0.0, Y_MAX)
    kept = 1.0 - share                                                 # consumption share
    r = aggregate[..., 1] * tf.exp(-pi - f["log_Pibar"])               # R_{t-1} / Pi_t
    taxes = (r - 1.0) * f["Bbar"]
    w = e / tf.reduce_mean(e, axis=-1, keepdims=True)                  # income shares
    # N = mean(c) with c = kept (r b + w (N - T)): N mean(share w) = r mean(kept b) - T mean(kept
    # w), mean(w) being 1 (the form without the cancellation of 1 - mean(kept w)).
    saved = tf.reduce_mean(share * w, axis=-1)
    N = (r * tf.reduce_mean(kept * b, axis=-1) - taxes * (1.0 - saved)) / tf.maximum(saved, 1e-4)
    N = tf.maximum(N, 1e-3)
    # Positive: where it would not be (taxes above a poor household's pay, in states a policy far
    # from the equilibrium's reaches), the identities give way rather than consumption.
    cash = tf.maximum(r[..., None] * b + w * (N - taxes)[..., None], 1e-6)
    log_N = tf.math.log(N)
    notional = (LOG_RBAR + p["theta_pi"] * pi
                + p["theta_y"] * (log_N - math.log(f["Ybar"])))
    return {"log_N": log_N, "notional": notional, "log_R": self.floor(notional),
            "c": kept * cash, "b_next": cash - kept * cash}

  def step(self, state, theta, eps, today):
    p = self.unpack(theta)
    now = self.allocation(state, theta, today)
    zeta = p["rho_zeta"] * state[:, 0] + p["sigma_zeta"] * eps[..., 0]      # [..., batch]
    R = tf.exp(now["log_R"]) + tf.zeros_like(zeta)
    _, agents = self.split_agents(state, 2)
    # Each household's next productivity state from its own normal innovation: the chain's row
    # CDF at Phi(eps).
    s = self.productivity_state(agents[..., 1])                              # [batch, L]
    u = normal_cdf(eps[..., 1:])                                           # [..., batch, L]
    cdf = tf.gather(tf.constant(self._cdf, u.dtype), s)                      # [batch, L, S-1]
    s_next = tf.reduce_sum(tf.cast(u[..., None] > cdf, tf.int32), axis=-1)
    e_next = tf.gather(tf.constant(self._e, state.dtype), s_next)
    b_next = now["b_next"] + tf.zeros_like(e_next)
    households = tf.reshape(tf.stack([b_next, e_next], axis=-1),
                            tf.concat([tf.shape(e_next)[:-1], [-1]], 0))
    return tf.concat([tf.stack([zeta, R], axis=-1), households], axis=-1)

  def equilibrium(self, state, theta, eps, today, tomorrow, weights=None):
    f = self.fixed
    p = self.unpack(theta)
    now = self.allocation(state, theta, today)
    state_next = self.step(state, theta, eps, today)                   # [k, batch, n_state]
    then = self.allocation(state_next, theta, tomorrow)
    pi, pi1 = today[:, 0], tomorrow[..., 0]
    dz = state_next[..., 0] - state[:, 0]                              # [k, batch]
    # Euler gap, 1 - beta E[exp(zeta' - zeta) (R / Pi') (c' / c)^-sigma], per household.
    inner = (dz - pi1)[..., None] - f["sigma"] * (tf.math.log(then["c"]) - tf.math.log(now["c"]))
    gap = -tf.math.expm1(math.log(f["beta"]) - f["log_Pibar"] + now["log_R"][:, None]
                         + tf.math.log1p(self.expect(tf.math.expm1(inner), weights)))
    y = today[:, 1:]
    # Fischer-Burmeister: zero iff gap >= 0, y >= 0 and one of them zero (the borrowing limit).
    euler = gap + y - tf.sqrt(tf.square(gap) + tf.square(y) + 1e-20)
    # rank_zlb's NKPC with N' / N from the two allocations, in units of a relative error of
    # hours: divided by the slope (eps - 1) (eta + sigma) / phi (about 0.02). In rank_zlb's units
    # a 5 % error in hours is a residual of 1e-3, as small as one household's Euler gap of 0.1 %,
    # and training left hours 5 % off with the households' Euler equations met.
    n, n1 = now["log_N"], then["log_N"]
    marginal = tf.math.expm1((f["eta"] + f["sigma"]) * n
                             + math.log(f["chi"] * f["eps"] / (f["eps"] - 1)))
    future = self.expect(tf.exp(f["log_Pibar"] - now["log_R"] + 2 * pi1 + n1 - n)
                         * tf.math.expm1(pi1), weights)
    nkpc = ((tf.math.expm1(pi) * tf.exp(pi) - future) * p["phi"] / (f["eps"] - 1)
            - marginal) / (f["eta"] + f["sigma"])
    return tf.concat([nkpc[:, None], euler], axis=1)

  def accuracy_extras(self, policy, n_theta=8, chains=16, periods=100, seed=0):
    """The households' side of the accuracy report along ergodic simulations (`chains` paths
    of `periods` periods from the continuum's distribution) at the calibration and
    `n_theta - 1` draws of the box: unit-free Euler errors of the households that save
    (`household_errors`), how far those at the limit are from wanting to save, the bond market,
    and the wealth distribution against the continuum steady state's and against the
    continuum's own policy run on these L households."""
    theta = np.concatenate([self.calibration[None], self.draw_theta(
        n_theta - 1, tf.constant([seed, 31], tf.int32)).numpy()]).astype(np.float32)
    states = simulation.ergodic_states(self, policy, theta, chains, seed, periods)  # [n, m, S]
    flat = states.reshape(-1, self.n_state)
    rows = np.repeat(theta, chains, axis=0)
    chunk = max(1, 4096 // (self.n_agents ** 2))
    errors = [household_errors(self, policy, flat[i:i + chunk], rows[i:i + chunk], seed=seed,
                               stream=i) for i in range(0, len(flat), chunk)]
    # A household that saves but wants to consume more (gap > 0) is off by the smaller of the
    # two fixes of the complementarity condition: consume until the Euler equation holds, or
    # until it holds nothing (b' / c). Both are relative consumption errors.
    euler = np.concatenate([np.where(e["gap"] > 0, np.minimum(e["euler"], e["saved_share"]),
                                     e["euler"])[e["saves"]] for e in errors])
    plain = np.concatenate([e["euler"][e["saves"]] for e in errors])
    log_euler = np.log10(euler + 1e-12)
    saves = np.concatenate([e["saves"].ravel() for e in errors])
    shortfall = np.concatenate([e["shortfall"][~e["saves"]] for e in errors])
    b_next = self.allocation(tf.constant(flat, tf.float32), tf.constant(rows),
                             policy(tf.constant(flat, tf.float32), tf.constant(rows)))["b_next"]
    guess = simulation.ergodic_states(self, self.policy_guess, theta[:1], chains, seed, periods)
    # Aggregates are averaged over more states than the households' errors need: one in 16
    # periods binding is ~6 %.
    calibrated = simulation.ergodic_states(self, policy, theta[:1], AGGREGATE_CHAINS, seed,
                                           periods)[0]
    responses, raw_responses = self.continuum_responses(policy, seed=seed)
    return {"aggregates": self.ergodic_aggregates(policy, calibrated),
            "impulse_responses": responses, "_impulse_responses": raw_responses,
            "households": {
        "euler_log10": {"mean": float(log_euler.mean()), "p99": float(np.percentile(log_euler, 99)),
                        "max": float(log_euler.max()), "households": int(euler.size)},
        "euler_log10_every_saver": {"mean": float(np.log10(plain + 1e-12).mean()),
                                    "p99": float(np.percentile(np.log10(plain + 1e-12), 99))},
        "share_at_limit": float(1.0 - saves.mean()),
        "limit_shortfall_max": float(shortfall.max()) if shortfall.size else 0.0,
        "bond_market_max_abs": float(np.max(np.abs(b_next.numpy().mean(axis=1)
                                                   - self.fixed["Bbar"]))),
        "wealth": wealth_statistics(self, states[:1]),
        "wealth_continuum_policy": wealth_statistics(self, guess),
        "wealth_continuum": continuum_wealth(),
        "n_theta": int(n_theta), "states": int(len(flat))},
        "_households": {"euler_log10": log_euler, "wealth": agents_wealth(self, states[:1]),
                        "wealth_guess": agents_wealth(self, guess),
                        "continuum": continuum_cdf()}}

  def continuum_responses(self, policy, shock=SMALL_SHOCK, horizon=20, draws=1000, seed=0):
    """Small-shock responses of hours (output) and inflation at the calibration: the network
    economy's generalised impulse response to a preference innovation of `shock` std over
    `draws` ergodic starts, against the continuum's first-order response (sequence-jacobian,
    `hank_continuum`), both per std of an innovation of `shock`'s sign. Returns (summary, raw
    `[horizon]` paths); the summary says what is skipped and why where it cannot be had."""
    if not self.risk:
      return {"skipped": "no idiosyncratic risk: this economy's continuum is rank_zlb, its "
                         "reference"}, None
    try:
      from nk_keras.economies import hank_continuum
    except ImportError:
      return {"skipped": "needs the hank extra: pip install nk-keras[hank]"}, None
    theta = self.calibration.astype(np.float32)
    table, _ = simulation.generalized_impulse_response(self, policy, theta, shock, horizon,
                                                       draws, seed)
    continuum = hank_continuum.impulse_response(dict(zip(self.param_names, self.calibration)),
                                                math.copysign(1.0, shock), horizon)
    summary, raw = {"shock_std": shock, "draws": draws, "L": self.n_agents}, {}
    for name in ("N", "Pi"):
      net, ref = table[f"{name}_nn"] / abs(shock), continuum[name]
      peak = int(np.argmax(np.abs(ref)))
      summary[name] = {"continuum_peak": float(ref[peak]), "network_at_peak": float(net[peak]),
                       "peak_period": peak, "relative_gap": float(net[peak] / ref[peak] - 1)}
      raw[name] = {"network": net, "continuum": ref}
    return summary, raw

  def ergodic_aggregates(self, policy, states):
    """At the calibration, along ergodic `states` `[m, n_state]`: how often the ZLB binds, and
    mean inflation (annualised, pp), the real rate `log R - log Pi` (annualised, pp) and hours
    (%) off their steady state. A network that has found the deflationary equilibrium, or
    leaves the NKPC unmet, shows here first: the households' Euler errors can be small in
    either. The real rate is where the bond market clears: above the steady state's, the rule
    puts inflation above target by about its gap / (theta_pi - 1)."""
    state = tf.constant(states, tf.float32)
    theta = tf.constant(np.repeat(self.calibration[None], len(states), 0), tf.float32)
    policies = policy(state, theta)
    now = self.allocation(state, theta, policies)
    return {"zlb_share": float(np.mean(now["notional"].numpy() < 0)),
            "inflation_gap_pp": float(400 * np.mean(policies[:, 0].numpy())),
            "real_rate_gap_pp": float(400 * np.mean(now["log_R"].numpy() - LOG_RBAR
                                                    - policies[:, 0].numpy())),
            "hours_gap_pct": float(100 * np.mean(now["log_N"].numpy()
                                                 - math.log(self.fixed["Ybar"]))),
            "states": int(len(states))}

  def constraint_slack(self, state, theta, policies):
    return self.allocation(state, theta, policies)["notional"]

  def outputs(self, state, theta, policies):
    now = self.allocation(state, theta, policies)
    return {"c": now["c"], "b_next": now["b_next"], "N": tf.exp(now["log_N"]),
            "Pi": tf.exp(policies[:, 0] + self.fixed["log_Pibar"]), "R": tf.exp(now["log_R"])}

  def policies_from_outputs(self, outputs):
    y = outputs["b_next"] / (outputs["b_next"] + outputs["c"])
    return tf.concat([tf.math.log(outputs["Pi"])[:, None] - self.fixed["log_Pibar"], y], axis=1)

  def measure(self, state, theta, policies, previous):
    """rank_zlb's observables, annualised percent: output growth, inflation, the rate."""
    now = self.allocation(state, theta, policies)
    last_state, last = previous
    growth = now["log_N"] - self.allocation(last_state, theta, last)["log_N"]
    return {"output_growth": 400 * tf.math.expm1(growth),
            "inflation": 400 * tf.math.expm1(policies[..., 0] + self.fixed["log_Pibar"]),
            "interest_rate": 400 * tf.math.expm1(now["log_R"])}


class HankCollapse(HankZLB):
  """hank_zlb without idiosyncratic risk (one productivity state) and with beta 0.9975: every
  household holds Bbar and the aggregates are rank_zlb's (MODEL.md section 10, "Collapse"), so
  rank_zlb's time iteration is its reference."""

  name = "hank_zlb_collapse"
  risk = False

  def reference(self, theta, progress=False):
    return CollapseReference(self, RankZLB().reference(theta, progress=progress))


class CollapseReference(Reference):
  """rank_zlb's solution `rank` in the collapse's policy units, at the collapse's states (every
  household holding Bbar): inflation as it is, and each household's savings share
  `y = Bbar / (Bbar + N)` (cash on hand is Bbar + N when taxes pay the bonds' interest). A share's
  error in its ergodic std is hours' error in theirs to first order (y is monotone in N)."""

  def __init__(self, economy, rank):
    self.economy, self.rank = economy, rank
    self.theta, self.valid = rank.theta, rank.valid

  def _in_collapse_units(self, values):
    """rank_zlb's `[..., 2]` (log N, log Pi gap) -> the collapse's `[..., 1 + L]`."""
    Bbar = self.economy.fixed["Bbar"]
    y = Bbar / (Bbar + np.exp(values[..., :1]))
    return np.concatenate([values[..., 1:2]] + [y] * self.economy.n_agents, axis=-1)

  def policies(self, state):
    return self._in_collapse_units(self.rank.policies(np.asarray(state)[..., :1]))

  def scale(self):
    return self.rank.ergodic_std_of(self._in_collapse_units)

  def probability_below(self, fn):
    """rank_zlb's ergodic probability `[n]` that `fn(state, values)` of the collapse's states and
    policies is negative, at the collapse's states along rank_zlb's grid."""
    L = self.economy.n_agents
    def on_collapse(state, values):                        # [n, G, 1], [n, G, 2]
      households = np.broadcast_to(np.tile([self.economy.fixed["Bbar"], 1.0], L),
                                   state.shape[:2] + (2 * L,))
      R_lag = np.full_like(state, math.exp(LOG_RBAR))       # unused in the collapse's allocation
      return np.asarray(fn(np.concatenate([state, R_lag, households], axis=-1),
                           self._in_collapse_units(values)))
    return self.rank.probability_below(on_collapse)

  def as_policy(self):
    rank, Bbar, L = self.rank.as_policy(), self.economy.fixed["Bbar"], self.economy.n_agents
    def policy(state, theta):      # in the state's dtype, as a network answers
      values = tf.cast(rank(state[:, :1], theta), state.dtype)
      y = Bbar / (Bbar + tf.exp(values[:, :1]))
      return tf.concat([values[:, 1:2], tf.tile(y, [1, L])], axis=1)
    return policy

  def ergodic_sample(self, chains, seed=0):
    """States `[n, chains, n_state]` simulated under the reference itself: R_lag the rate it set
    last period, every household at Bbar."""
    return simulation.ergodic_states(self.economy, self.as_policy(), self.theta, chains, seed)


def household_errors(economy, policy, state, theta, nodes=12, draws=8, seed=0, stream=0):
  """Each household's equilibrium error at `state` `[m, n_state]`, `theta` `[m, n_params]`
  (NumPy) under `policy`: the unit-free Euler error `|1 - c_implied / c|` `[m, L]` and whether
  the household saves (`b' > 0`, where that error applies; at the limit the condition is the
  Euler gap's sign, returned as `shortfall`, max(0, -gap), also `[m, L]`).

  The expectation: the preference shock by Gauss-Hermite quadrature on `nodes` nodes, the
  household's own next productivity summed exactly over the chain's row, the other households'
  drawn `draws` times per node. The others move a household's income share `e / mean(e)` and
  tomorrow's aggregates: one draw per node left a noise of 0.004-0.005 in the gap, larger
  than the errors measured (the shipped model read -2.6 in mean log10 error instead of about
  -3.0; noise only ever adds to an absolute error). So the others' shares in each productivity
  state but one, whose conditional means are exact, serve as control variates (coefficients by
  least squares within each node): 8 draws then leave about 3e-4. Every alternative is its own
  agent set, so a call costs `nodes * draws * S * L` set evaluations per point. Calls on
  several chunks of states need a `stream` each (BUILD_NOTES.md, "Heterogeneous agents")."""
  f = economy.fixed
  L, S = economy.n_agents, len(economy._e)
  x, w = np.polynomial.hermite_e.hermegauss(nodes)
  Q = nodes * draws
  weights = np.repeat(w / w.sum(), draws) / draws                        # [Q]
  state = tf.constant(state, tf.float32)
  theta = tf.constant(theta, tf.float32)
  m = int(state.shape[0])
  today = policy(state, theta)
  now = economy.allocation(state, theta, today)
  others = tf.random.stateless_normal([Q, m, L], tf.constant([seed, 77 + stream], tf.int32))
  zeta = tf.constant(np.repeat(x, draws), tf.float32)
  eps = tf.concat([tf.broadcast_to(zeta[:, None, None], [Q, m, 1]), others], axis=-1)
  nxt = economy.step(state, theta, eps, today)                          # [Q, m, n_state]
  # Alternative (s, i): household i's next productivity set to state s.
  e_column = 2 + 2 * np.arange(L) + 1
  levels = tf.constant(economy._e, tf.float32)
  alt = tf.tile(nxt[:, None, None], [1, S, L, 1, 1])                    # [Q, S, L, m, n_state]
  mask = tf.one_hot(e_column, economy.n_state)                          # [L, n_state]
  alt = (alt * (1 - mask[None, None, :, None, :])
         + levels[None, :, None, None, None] * mask[None, None, :, None, :])
  flat = tf.reshape(alt, [-1, economy.n_state])
  rows = tf.tile(theta, [Q * S * L, 1])
  tomorrow = policy(flat, rows)
  then = economy.allocation(flat, rows, tomorrow)
  # Household i's consumption in its own alternatives (s, i): [Q, S, L, m].
  c1 = tf.reshape(then["c"], [Q, S, L, m, L])
  c1 = tf.transpose(tf.linalg.diag_part(tf.transpose(c1, [0, 1, 3, 2, 4])), [0, 1, 3, 2])
  pi1 = tf.reshape(tomorrow[:, 0], [Q, S, L, m])
  dz = nxt[..., 0] - state[:, 0]                                        # [Q, m]
  P = tf.constant(economy._P, tf.float32)                               # [S, S]
  s_now = economy.productivity_state(economy.split_agents(state, 2)[1][..., 1])   # [m, L]
  prob = tf.transpose(tf.gather(P, s_now), [2, 1, 0])                   # [S, L, m]
  inner = tf.exp(dz[:, None, None] - pi1 - f["sigma"] * (
      tf.math.log(c1) - tf.math.log(tf.transpose(now["c"])[None, None])))       # [Q, S, L, m]
  # Each draw's value `[Q, m, L]`, the household's own next productivity summed over its row.
  value = tf.einsum("slm,qslm->qml", prob, inner).numpy().astype(np.float64)
  if S > 1 and draws > 1:
    s_next = economy.productivity_state(economy.split_agents(nxt, 2)[1][..., 1]).numpy()
    expected = tf.gather(P, s_now).numpy().mean(axis=1)                 # [m, S]
    shares = np.stack([(s_next == s).mean(-1) - expected[:, s] for s in range(S - 1)], -1)

    def within_node(a):            # [Q, ...] -> [nodes, draws, ...] less each node's mean
      a = a.reshape(nodes, draws, *a.shape[1:])
      return a - a.mean(axis=1, keepdims=True)
    F, V = within_node(shares), within_node(value)                      # [n, k, m, S-1], [.., L]
    gram = np.einsum("nkma,nkmb->mab", F, F) + 1e-12 * np.eye(S - 1)
    coef = np.linalg.solve(gram, np.einsum("nkma,nkml->mal", F, V))     # [m, S-1, L]
    value = value - np.einsum("qma,mal->qml", shares, coef)
  expectation = np.einsum("q,qml->ml", weights, value)
  gap = 1.0 - f["beta"] * np.exp(now["log_R"].numpy() - f["log_Pibar"])[:, None] * expectation
  implied = np.power(1.0 - gap, -1.0 / f["sigma"])
  return {"euler": np.abs(1.0 - implied), "saves": (now["b_next"] > 0).numpy(),
          "shortfall": np.maximum(-gap, 0.0), "gap": gap,
          "saved_share": (now["b_next"] / now["c"]).numpy()}


def agents_wealth(economy, states):
  """Every household's bonds `[k]` in `states` `[..., n_state]` (NumPy)."""
  _, agents = economy.split_agents(states.reshape(-1, economy.n_state), 2)
  return np.asarray(agents[..., 0]).ravel()


def continuum_cdf():
  """The continuum's stationary wealth: grid `[n]` and mass `[n]` over productivity states."""
  start = starting_point()
  return start["b"], start["D"].sum(axis=0)


def wealth_statistics(economy, states):
  """Wealth held at the start of the period across all households of `states` `[..., n_state]`
  (NumPy): mean by productivity state, the Gini and the share holding under 0.25."""
  _, agents = economy.split_agents(tf.constant(states.reshape(-1, economy.n_state)), 2)
  b, s = agents[..., 0].numpy().ravel(), economy.productivity_state(agents[..., 1]).numpy().ravel()
  return {"wealth_by_state": [float(b[s == i].mean()) if np.any(s == i) else float("nan")
                              for i in range(len(economy._e))],
          "gini": gini(b), "share_under_0.25": float(np.mean(b < 0.25))}


def gini(b):
  b = np.sort(np.asarray(b, np.float64))
  n = len(b)
  return float(1.0 - 2.0 * np.sum(np.cumsum(b) / b.sum()) / n + 1.0 / n)


def continuum_wealth():
  """The continuum steady state's wealth statistics, as `wealth_statistics` gives them (from
  `starting_point`'s solution, not solved again)."""
  start = starting_point()
  D, b = start["D"], start["b"]
  return {"wealth_by_state": (D @ b / D.sum(axis=1)).tolist(), "gini": float(start["gini"]),
          "share_under_0.25": float(D[:, b < 0.25].sum())}
