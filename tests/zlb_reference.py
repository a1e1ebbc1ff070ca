"""Independent time-iteration solver for KMR's RANK model with a zero lower bound (docs/models.md, "Economy 2").

The test suite's own truth for the ZLB economy: pure NumPy, float64, imports nothing from
nk_keras. Vectorised over parameter vectors AND grid points: every array is `[n, G]` (n thetas,
G grid points) or `[n, G, K]` (K quadrature nodes); thetas go in batches (CHUNK_BYTES), never
one by one.

Method, for every theta at once:
  * grid of zeta, uniform on +-span * sigma_erg(theta), sigma_erg = sigma_zeta / sqrt(1 - rho^2);
  * next-period policies (log N, log Pi) linearly interpolated from the previous iterate
    (linear extrapolation beyond the grid ends); since the grid and the quadrature nodes are fixed,
    the interpolation indices and weights are computed once;
  * expectations by Gauss-Hermite quadrature;
  * at every grid point, Newton with the analytic 2x2 Jacobian for (log N, log Pi) today given
    tomorrow's interpolated policies (the ZLB's max handled by its active branch: semismooth Newton);
  * iterate until the largest change in the policies is below tol. A theta whose iteration blows up
    (non-finite, |log N| or |log Pi| > 1) or does not settle within max_iter is marked not converged
    (no stable equilibrium found); it never stops the rest of the batch.

Equations (sigma, eta fixed to the calibration below):
  Euler: 1 = beta R E[exp(zeta' - zeta) (N / N')^sigma / Pi']
  NKPC:  phi (Pi/Pibar - 1) Pi/Pibar = (1 - eps) + eps chi N^(eta+sigma)
             + phi E[(Pi'/R) (Pi'/Pibar - 1) (Pi'/Pibar) N'/N]
  R = max(1, Rbar (Pi/Pibar)^theta_pi (N/Ybar)^theta_y), Rbar = Pibar / beta.

Columns of theta: theta_pi, theta_y, phi, rho_zeta, sigma_zeta.
"""

import dataclasses
import math

import numpy as np

BETA = 0.9975
SIGMA = 1.0
ETA = 1.0
EPS = 11.0
CHI = 0.91
LOG_PIBAR = 0.005
YBAR = 1.0
LOG_RBAR = LOG_PIBAR - math.log(BETA)
LOG_YBAR = math.log(YBAR)

NAMES = ("theta_pi", "theta_y", "phi", "rho_zeta", "sigma_zeta")
LOWER = np.array([1.5, 0.05, 700.0, 0.5, 0.01])
UPPER = np.array([2.5, 0.5, 1300.0, 0.9, 0.025])
TRUE = np.array([2.0, 0.25, 1000.0, 0.7, 0.02])

# Defaults: ~5e-7 in log N and ~1e-7 in log Pi against a 6401-point grid at the true theta, 0.12 s
# for one theta on one core. The quadrature ("split", 64 nodes) is converged to ~6e-8.
# See tests/test_zlb_reference.py for the measured refinement differences.
N_GRID = 801
N_NODES = 64
SPAN = 5.0
MAX_ITER = 2000
QUAD = "split"
# Thetas solved together: their `[rows, G, K]` arrays stay under glibc's 32 MB mmap threshold,
# so each iteration reuses the heap instead of faulting fresh pages (125 thetas in one batch:
# 46 s user + 19 s system; in batches of 40: 42 + 5).
CHUNK_BYTES = 1 << 24
BLOWUP = 1.0          # |log N| or |log Pi| beyond this: running away, no stable equilibrium


@dataclasses.dataclass
class Solution:
  theta: np.ndarray        # [n, 5]
  grid: np.ndarray         # [n, G] zeta
  log_N: np.ndarray        # [n, G]
  log_Pi: np.ndarray       # [n, G] log of gross inflation
  converged: np.ndarray    # [n] bool
  iterations: np.ndarray   # [n] time-iteration steps taken
  n_nodes: int
  span: float
  quad: str


def _split(theta):
  theta = np.asarray(theta, np.float64)
  if theta.ndim == 1:
    theta = theta[None]
  return theta, [theta[:, j:j + 1] for j in range(5)]


def sigma_erg(theta):
  theta = np.atleast_2d(np.asarray(theta, np.float64))
  return theta[:, 4] / np.sqrt(1.0 - theta[:, 3] ** 2)


def linearised(theta):
  """Closed-form slopes (a, b) of the linearised model without ZLB: log N = a zeta,
  log(Pi / Pibar) = b zeta. Returns two `[n]` arrays."""
  theta = np.atleast_2d(np.asarray(theta, np.float64))
  tp, ty, phi, rho = theta[:, 0], theta[:, 1], theta[:, 2], theta[:, 3]
  kappa = (EPS - 1.0) * (ETA + SIGMA) / phi
  a = (1.0 - rho) / (SIGMA * (1.0 - rho) + ty + (tp - rho) * kappa / (1.0 - BETA * rho))
  return a, kappa * a / (1.0 - BETA * rho)


def log_rate(theta, log_N, log_Pi):
  """log R with the ZLB applied (R = max(1, notional)); theta `[n, 5]`, policies `[n, m]`."""
  return np.maximum(0.0, log_notional_rate(theta, log_N, log_Pi))


def log_notional_rate(theta, log_N, log_Pi):
  _, (tp, ty, _, _, _) = _split(theta)
  return LOG_RBAR + tp * (log_Pi - LOG_PIBAR) + ty * (log_N - LOG_YBAR)


def _nodes(n_nodes):
  x, w = np.polynomial.hermite.hermgauss(n_nodes)
  return math.sqrt(2.0) * x, w / math.sqrt(math.pi)      # standard normal nodes and weights


def _interp_plan(grid, zeta):
  """Gather indices (per row) and weights for linear interpolation (extrapolation beyond the
  ends) of `[n, G]` grid values at `zeta` `[n, ...]`. Grids are uniform per theta."""
  n, G = grid.shape
  z0 = grid[:, :1]
  h = (grid[:, -1:] - z0) / (G - 1)
  shape = zeta.shape
  u = (zeta.reshape(n, -1) - z0) / h
  i = np.clip(np.floor(u), 0, G - 2)
  w = u - i
  return i.astype(np.intp).reshape(shape), w.reshape(shape)


def _gather(values, plan):
  i, w = plan
  n, G = values.shape
  flat = i + (np.arange(n) * G).reshape((n,) + (1,) * (i.ndim - 1))
  v = values.ravel()
  lo = v[flat]
  return lo + w * (v[flat + 1] - lo)


def kink_cell(theta, log_N, log_Pi):
  """Index j `[n]` of the first grid cell [z_j, z_{j+1}] where the notional rate changes sign
  (the ZLB's kink in the policy), -1 where it does not change sign on the grid."""
  neg = log_notional_rate(theta, log_N, log_Pi) < 0.0
  change = neg[:, 1:] != neg[:, :-1]
  return np.where(change.any(1), change.argmax(1), -1)


TRUNC = 8.0     # |eps| beyond this carries 1.2e-15 of the normal mass


def _quadrature(theta, grid, zeta, quad, n_nodes, cell):
  """Nodes of zeta' given zeta `[n, m]`: interpolation plan, weights qw `[n, m, K]` (normal
  density included) and wez = qw * exp(zeta' - zeta).

  quad="gh": Gauss-Hermite with n_nodes nodes.
  quad="split": the standard normal truncated to +-TRUNC and cut at the images of the two grid
  points bounding the kink cell (where the interpolated policy has its ZLB kink) and at 0; each of
  the four pieces gets n_nodes // 4 Gauss-Legendre nodes. The integrand is then smooth on every
  piece (up to the interpolant's O(h^2) kinks at the other grid points), so the quadrature error
  is not limited by the kink as Gauss-Hermite's is (~1e-5 in log N with 40-200 nodes).
  """
  n = theta.shape[0]
  rho, sz = theta[:, 3, None, None], theta[:, 4, None, None]
  z = zeta[:, :, None]
  if quad == "gh":
    eps, w = _nodes(n_nodes)
    eps = np.broadcast_to(eps, z.shape[:2] + (n_nodes,))
    qw = np.broadcast_to(w, eps.shape)
  elif quad == "split":
    q = n_nodes // 4
    x, w = np.polynomial.legendre.leggauss(q)
    j = np.maximum(cell, 0)
    rows = np.arange(n)
    has = (cell >= 0)[:, None, None]
    b1 = np.where(has, (grid[rows, j][:, None, None] - rho * z) / sz, 0.0)
    b2 = np.where(has, (grid[rows, j + 1][:, None, None] - rho * z) / sz, 0.0)
    cuts = np.sort(np.clip(np.concatenate([b1, b2, np.zeros_like(b1)], -1), -TRUNC, TRUNC), -1)
    edges = np.concatenate([np.full_like(b1, -TRUNC), cuts, np.full_like(b1, TRUNC)], -1)
    half = 0.5 * (edges[..., 1:] - edges[..., :-1])               # [n, m, 4]
    mid = 0.5 * (edges[..., 1:] + edges[..., :-1])
    eps = (mid[..., None] + half[..., None] * x).reshape(z.shape[:2] + (4 * q,))
    qw = (half[..., None] * w).reshape(eps.shape) \
        * np.exp(-0.5 * eps ** 2) / math.sqrt(2.0 * math.pi)
  else:
    raise ValueError(f"quad must be 'gh' or 'split', got {quad!r}")
  zp = rho * z + sz * eps
  return _interp_plan(grid, zp), qw * np.exp(zp - z), qw


def _expectations(plan, wez, qw, log_N, log_Pi):
  """E1 = E[exp(zeta' - zeta) N'^-sigma / Pi'] and E2 = E[Pi' (Pi'/Pibar - 1)(Pi'/Pibar) N']
  `[n, m]` with the policies interpolated at zeta' (plan); qw `[n, m, K]` quadrature weights
  (normal density included), wez = qw * exp(zeta' - zeta)."""
  lnN = _gather(log_N, plan)
  lnPi = _gather(log_Pi, plan)
  e1 = (wez * np.exp(-SIGMA * lnN - lnPi)).sum(-1)
  p = np.exp(lnPi - LOG_PIBAR)
  e2 = (qw * np.exp(lnPi + lnN) * (p - 1.0) * p).sum(-1)
  return e1, e2


def _residuals(pars, x, y, e1, e2, jacobian=False):
  """Euler (in logs) and NKPC residuals at (x, y) = (log N, log Pi) given the expectations."""
  tp, ty, phi = pars
  yhat = y - LOG_PIBAR
  lnrn = LOG_RBAR + tp * yhat + ty * (x - LOG_YBAR)
  b = lnrn > 0.0
  lnr = np.where(b, lnrn, 0.0)
  p = np.exp(yhat)
  mc = CHI * np.exp((ETA + SIGMA) * x)
  fut = phi * e2 * np.exp(-lnr - x)
  f1 = math.log(BETA) + lnr + SIGMA * x + np.log(e1)
  f2 = phi * (p - 1.0) * p - (1.0 - EPS) - EPS * mc - fut
  if not jacobian:
    return f1, f2
  bf = b.astype(np.float64)
  j11 = SIGMA + bf * ty
  j12 = bf * tp
  j21 = -EPS * (ETA + SIGMA) * mc + fut * (1.0 + bf * ty)
  j22 = phi * (2.0 * p - 1.0) * p + fut * bf * tp
  return f1, f2, j11, j12, j21, j22


def _newton(pars, x, y, e1, e2, steps=30, tol=1e-14):
  for _ in range(steps):
    f1, f2, j11, j12, j21, j22 = _residuals(pars, x, y, e1, e2, jacobian=True)
    det = j11 * j22 - j12 * j21
    dx = (j22 * f1 - j12 * f2) / det
    dy = (j11 * f2 - j21 * f1) / det
    # Guard against wild first steps far from the solution.
    dx = np.clip(dx, -0.1, 0.1)
    dy = np.clip(dy, -0.1, 0.1)
    x = x - dx
    y = y - dy
    with np.errstate(invalid="ignore"):
      big = np.nanmax(np.abs(np.concatenate([dx.ravel(), dy.ravel()])), initial=0.0)
    if not big > tol:
      break
  return x, y


def solve(theta, n_grid=N_GRID, n_nodes=N_NODES, span=SPAN, tol=1e-12, max_iter=MAX_ITER,
          quad=QUAD, init=None):
  """Time iteration for every row of theta `[n, 5]` at once. Returns a Solution.

  init: optional (log_N, log_Pi) `[n, n_grid]` start (on the same grids); default the
  linearised solution around log N = log(Pi / Pibar) = 0.
  """
  theta = np.atleast_2d(np.asarray(theta, np.float64))
  n = theta.shape[0]
  rows = max(1, CHUNK_BYTES // (8 * n_grid * n_nodes))
  if n > rows:
    parts = [solve(theta[i:i + rows], n_grid, n_nodes, span, tol, max_iter, quad,
                   None if init is None else [v[i:i + rows] for v in init])
             for i in range(0, n, rows)]
    return dataclasses.replace(parts[0], **{
        f.name: np.concatenate([getattr(p, f.name) for p in parts])
        for f in dataclasses.fields(Solution) if f.type is np.ndarray})
  grid = sigma_erg(theta)[:, None] * np.linspace(-span, span, n_grid)[None, :]
  if init is None:
    a, b = linearised(theta)
    log_N = a[:, None] * grid
    log_Pi = LOG_PIBAR + b[:, None] * grid
  else:
    log_N, log_Pi = (np.array(v, np.float64) for v in init)
  converged = np.zeros(n, bool)
  iterations = np.zeros(n, np.int64)
  active = np.arange(n)          # rows still iterating; the a_* arrays hold only those
  a_th, a_grid, a_N, a_Pi = theta, grid, log_N.copy(), log_Pi.copy()
  cell = kink_cell(theta, log_N, log_Pi)
  plan, wez, qw = _quadrature(theta, grid, grid, quad, n_nodes, cell)
  for it in range(1, max_iter + 1):
    if quad == "split":
      new_cell = kink_cell(a_th, a_N, a_Pi)
      moved = np.flatnonzero(new_cell != cell)
      if moved.size:       # the kink moved to another cell: new cuts for those rows
        cell[moved] = new_cell[moved]
        p2, wez[moved], qw[moved] = _quadrature(a_th[moved], a_grid[moved], a_grid[moved], quad,
                                                n_nodes, cell[moved])
        plan[0][moved], plan[1][moved] = p2
    with np.errstate(all="ignore"):
      e1, e2 = _expectations(plan, wez, qw, a_N, a_Pi)
      new_N, new_Pi = _newton((a_th[:, 0:1], a_th[:, 1:2], a_th[:, 2:3]), a_N, a_Pi, e1, e2)
      change = np.maximum(np.abs(new_N - a_N).max(1), np.abs(new_Pi - a_Pi).max(1))
      bad = ~np.isfinite(change) | ~(np.abs(new_N).max(1) <= BLOWUP) \
          | ~(np.abs(new_Pi).max(1) <= BLOWUP)
    done = (change < tol) & ~bad
    a_N, a_Pi = new_N, new_Pi
    iterations[active] = it
    finished = done | bad
    if finished.any():
      log_N[active[finished]] = a_N[finished]
      log_Pi[active[finished]] = a_Pi[finished]
      converged[active[done]] = True
      keep = ~finished
      active = active[keep]
      if active.size == 0:
        break
      a_th, a_grid, a_N, a_Pi, cell = a_th[keep], a_grid[keep], a_N[keep], a_Pi[keep], cell[keep]
      plan, wez, qw = (plan[0][keep], plan[1][keep]), wez[keep], qw[keep]
  if active.size:
    log_N[active] = a_N
    log_Pi[active] = a_Pi
  return Solution(theta=theta, grid=grid, log_N=log_N, log_Pi=log_Pi, converged=converged,
                  iterations=iterations, n_nodes=n_nodes, span=span, quad=quad)


def policy(sol, zeta, kink=True):
  """(log N, log Pi) `[n, m]` at zeta `[n, m]` (or `[m]`, shared) by linear interpolation per
  theta (linear extrapolation beyond the grid).

  kink=True: in the grid cell holding the ZLB's kink, where plain linear interpolation is only
  first-order accurate (it cuts the corner, ~1e-5 in log N at the true theta on 801 points), each
  side's line is extended from its neighbouring cell instead, switching where the notional rate on
  the unconstrained side's line crosses zero."""
  zeta = np.asarray(zeta, np.float64)
  if zeta.ndim == 1:
    zeta = np.broadcast_to(zeta, (sol.grid.shape[0], zeta.size))
  plan = _interp_plan(sol.grid, zeta)
  out = [_gather(sol.log_N, plan), _gather(sol.log_Pi, plan)]
  if not kink:
    return tuple(out)
  G = sol.grid.shape[1]
  j = kink_cell(sol.theta, sol.log_N, sol.log_Pi)
  ok = (j >= 1) & (j <= G - 3)
  rows = np.flatnonzero(ok)
  if rows.size == 0:
    return tuple(out)
  j = j[rows]
  g = sol.grid[rows]
  h = (g[:, 1] - g[:, 0])[:, None]
  zj, zj1 = g[np.arange(rows.size), j][:, None], g[np.arange(rows.size), j + 1][:, None]
  z = zeta[rows]
  lines = []
  for f in (sol.log_N[rows], sol.log_Pi[rows]):
    pick = lambda k: np.take_along_axis(f, (j + k)[:, None], 1)   # noqa: E731
    left = pick(0) + (pick(0) - pick(-1)) / h * (z - zj)
    right = pick(1) + (pick(2) - pick(1)) / h * (z - zj1)
    lines.append((left, right))
  th = sol.theta[rows]
  # Unconstrained side: the one whose grid end of the cell has a positive notional rate.
  left_free = (log_notional_rate(th, sol.log_N[rows], sol.log_Pi[rows])
               [np.arange(rows.size), j] >= 0)[:, None]
  # The free side's notional rate is linear in z along its line: its zero is the switch.
  zk = []
  for free_left in (True, False):
    k0, k1 = (j - 1, j) if free_left else (j + 1, j + 2)
    r = [log_notional_rate(th, np.take_along_axis(sol.log_N[rows], k[:, None], 1),
                           np.take_along_axis(sol.log_Pi[rows], k[:, None], 1)) for k in (k0, k1)]
    zk0 = g[np.arange(rows.size), k0][:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
      zk.append(zk0 - r[0] * h / (r[1] - r[0]))
  zk = np.clip(np.where(left_free, zk[0], zk[1]), zj, zj1)
  inside = (z >= zj) & (z <= zj1)
  for o, (left, right) in zip(out, lines):
    o[rows] = np.where(inside, np.where(z < zk, left, right), o[rows])
  return tuple(out)


def residuals(sol, zeta=None, n_nodes=None):
  """Euler residual in logs (log of beta R E[...]) and NKPC residual (in the NKPC's own units,
  terms of order eps) at zeta `[n, m]` (default: the grid), expectations with the solver's own
  interpolation and quadrature. Returns two `[n, m]` arrays."""
  zeta = sol.grid if zeta is None else np.asarray(zeta, np.float64)
  e1, e2, x, y = _own_expectations(sol, zeta, n_nodes)
  th = sol.theta
  return _residuals((th[:, 0:1], th[:, 1:2], th[:, 2:3]), x, y, e1, e2)


def _own_expectations(sol, zeta, n_nodes=None):
  cell = kink_cell(sol.theta, sol.log_N, sol.log_Pi)
  plan, wez, qw = _quadrature(sol.theta, sol.grid, zeta, sol.quad, n_nodes or sol.n_nodes, cell)
  e1, e2 = _expectations(plan, wez, qw, sol.log_N, sol.log_Pi)
  x, y = policy(sol, zeta)
  return e1, e2, x, y


def euler_errors(sol, zeta, n_nodes=None):
  """Unit-free Euler errors log10 |1 - c_implied / c| at zeta `[n, m]`, c = N from the policy and
  c_implied = (beta R E[exp(zeta' - zeta) N'^-sigma / Pi'])^(-1/sigma) with the policy's own
  (interpolated) next-period policies."""
  zeta = np.asarray(zeta, np.float64)
  if zeta.ndim == 1:
    zeta = np.broadcast_to(zeta, (sol.grid.shape[0], zeta.size))
  e1, _, x, y = _own_expectations(sol, zeta, n_nodes)
  lnr = log_rate(sol.theta, x, y)
  ln_c_implied = -(math.log(BETA) + lnr + np.log(e1)) / SIGMA
  with np.errstate(divide="ignore"):
    return np.log10(np.abs(-np.expm1(ln_c_implied - x)))


def _normal_cdf(x):
  return 0.5 * (1.0 + np.vectorize(math.erf, otypes=[np.float64])(np.asarray(x) / math.sqrt(2.0)))


def ergodic_sd(sol, n_nodes=201):
  """Ergodic std of log N and log Pi `[n, 2]` under zeta's ergodic normal law N(0, sigma_erg^2),
  by Gauss-Hermite quadrature of the interpolated policy."""
  eps, qw = _nodes(n_nodes)
  z = sigma_erg(sol.theta)[:, None] * eps[None, :]
  out = []
  for f in policy(sol, z):
    m = f @ qw
    out.append(np.sqrt(np.maximum(((f - m[:, None]) ** 2) @ qw, 0.0)))
  return np.stack(out, 1)


def zlb_frequency(sol):
  """Ergodic probability `[n]` that the notional rate is below 1 (log notional < 0).

  The sign changes of the notional rate are located on the grid (linear interpolation between
  grid points, where the interpolated policy is linear); the probability of every interval where
  it is negative is then exact under the ergodic normal law (the policy's linear extrapolation
  beyond the grid is followed to +-infinity through the sign at the grid ends)."""
  lnrn = log_notional_rate(sol.theta, sol.log_N, sol.log_Pi)
  se = sigma_erg(sol.theta)
  grid = sol.grid
  n, G = grid.shape
  neg = lnrn < 0.0
  # Interval of cell j: [grid_j, grid_{j+1}]; the negative part of a cell with a sign change.
  f0, f1 = lnrn[:, :-1], lnrn[:, 1:]
  z0, z1 = grid[:, :-1], grid[:, 1:]
  with np.errstate(divide="ignore", invalid="ignore"):
    zc = np.where(f0 != f1, z0 + f0 / (f0 - f1) * (z1 - z0), z0)
  c0 = _normal_cdf(z0 / se[:, None])
  c1 = _normal_cdf(z1 / se[:, None])
  cc = _normal_cdf(zc / se[:, None])
  both = neg[:, :-1] & neg[:, 1:]
  down = ~neg[:, :-1] & neg[:, 1:]      # becomes negative inside the cell
  up = neg[:, :-1] & ~neg[:, 1:]
  prob = np.where(both, c1 - c0, 0.0) + np.where(down, c1 - cc, 0.0) + np.where(up, cc - c0, 0.0)
  p = prob.sum(1)
  # Tails beyond the grid, following the linear extrapolation's sign: d is the derivative of the
  # notional rate in the outward direction, zcross where the extrapolated line crosses zero.
  h = grid[:, 1] - grid[:, 0]
  for val, slope, zend, outward in ((lnrn[:, 0], lnrn[:, 1] - lnrn[:, 0], grid[:, 0], -1.0),
                                    (lnrn[:, -1], lnrn[:, -1] - lnrn[:, -2], grid[:, -1], 1.0)):
    d = outward * slope
    with np.errstate(divide="ignore", invalid="ignore"):
      zcross = zend - val * h / slope
    c_end = _normal_cdf(zend / se)
    c_cross = _normal_cdf(np.where(np.isfinite(zcross), zcross, 0.0) / se)
    if outward < 0:
      tail, beyond = c_end, c_cross                      # P(z < zend), P(z < zcross)
    else:
      tail, beyond = 1.0 - c_end, 1.0 - c_cross          # P(z > zend), P(z > zcross)
    stays = (val < 0) & (d <= 0)         # negative at the end and all the way out
    turns = (val >= 0) & (d < 0)         # turns negative beyond zcross
    ends = (val < 0) & (d > 0)           # negative from the end to zcross only
    p = p + np.where(stays, tail, 0.0) + np.where(turns, beyond, 0.0) \
        + np.where(ends, tail - beyond, 0.0)
  return np.where(sol.converged, p, np.nan)
