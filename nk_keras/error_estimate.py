"""An a-posteriori estimate of a policy's error from the economy's own residuals: no reference.

At one theta, if the policy `p` is off the equilibrium policy by a small `e(s)`, the residuals
satisfy, to first order, `r(s) = -[J_p(s) e(s) + E J_q(s, s') e(s')]` (plus, for an endogenous
state, the move of `s'` with today's error): the error today and the error tomorrow both show.
A single Newton step (`J_p^-1 r`, tomorrow held) sees only the first term, and so misses
errors that persist (a level error of inflation moves the Phillips curve by `(1 - beta)` of
itself: BUILD_NOTES, "rank_zlb"). Here the error is restricted, per theta, to a low-order
function of the states, `e_j(s) = sum_b c_jb phi_b(s)` with `phi = (1, z_1, .., z_S)` (z the
states standardised over the sample), and the coefficients `c` solve the linearised residual
equations at every sampled state in the least-squares sense: the persistent part is then
identified from how it moves today's and tomorrow's terms together.

Equations are taken in Newton units (`J_p^-1` applied, so each is a policy error) and divided
by each policy's scale (the metric's units), so the fit ranks errors as the metric does.
Expectations are by product quadrature over the shocks (trapezoid nodes on +-`WIDTH` std),
so the residuals carry no Monte Carlo noise, and the residuals are computed in float64 from the
policy's float32 values: a persistent error moves some residuals by (1 - beta) of itself, so
float32 round-off in the residuals would read as errors of several percent.

Where it is unreliable: errors that are not close to affine in the states within one theta
(a policy wrong only near a kink, such as the ZLB's) are smoothed over; residuals dominated
by round-off (a policy already accurate to ~1e-6 in float32) give an estimate of the
round-off, not of the policy. The linearisation assumes small errors: a policy off by tens of
percent is reported as off, not by how much.
"""

import numpy as np
import tensorflow as tf

# Quadrature nodes per shock: a kink (an occasionally binding constraint) leaves an O(h^2)
# error in the residuals, which the persistent part of the error amplifies; product rules with
# several shocks take fewer per shock.
NODES = {1: 60, 2: 16}
WIDTH = 6.0     # quadrature span in std of each shock
CHUNK = 256     # points per compiled call
FD_STEP = 1e-2  # tomorrow's state derivative: central differences of this many std of each state


def quadrature(n_shock, nodes, width=WIDTH):
  """Product trapezoid rule for standard-normal shocks: nodes `[Q, n_shock]`, weights `[Q]`."""
  x = np.linspace(-width, width, nodes)
  w = np.exp(-0.5 * x ** 2)
  w /= w.sum()
  grids = np.meshgrid(*[x] * n_shock, indexing="ij")
  weights = np.prod(np.meshgrid(*[w] * n_shock, indexing="ij"), axis=0)
  return np.stack([g.ravel() for g in grids], axis=1), weights.ravel()


def basis(state, mean, std):
  """`phi(s)` `[..., 1 + n_state]`: one, then each state standardised by `mean`, `std`."""
  z = (state - mean) / std
  return tf.concat([tf.ones_like(z[..., :1]), z], axis=-1)


def _system(economy, policy, state, theta, mean, std, scale, nodes, weights):
  """For points `state` `[b, S]` at `theta` `[b, P]` (basis centre `mean`, width `std`
  `[b, S]`, policy `scale` `[b, n_pol]`): the rows `[b, n_pol, n_pol * B]` and right-hand sides
  `[b, n_pol]` of the least-squares problem, in the metric's units."""
  n_pol, S = len(economy.policy_names), economy.n_state
  B = 1 + S
  b = tf.shape(state)[0]
  eps = tf.broadcast_to(nodes[:, None, :], tf.stack([tf.shape(nodes)[0], b, economy.n_shock]))
  phi = basis(state, mean, std)                                            # [b, B]

  # Everything is linearised at c = 0: the policies there are computed once, and tomorrow's
  # policy moves with tomorrow's state (an endogenous state moves with today's error) through
  # its state derivative by central differences. Forward-mode autodiff through the policy
  # instead, on a served graph that solves a perturbation, held every loop iteration of it:
  # more than 20 GB for 4,096 rows of rank_zlb_inertia.
  Q = tf.shape(nodes)[0]
  tile = lambda x: tf.tile(x, tf.stack([Q, 1]))                           # rows follow `flat`
  today0 = policy(state, theta)                                             # [b, n_pol]
  flat0 = tf.reshape(economy.step(state, theta, eps, today0), [-1, S])      # [Q b, S]
  theta_q = tile(theta)
  tomorrow0 = policy(flat0, theta_q)                                        # [Q b, n_pol]
  if economy.endogenous_states:
    h = FD_STEP * tile(std)                                                 # [Q b, S]
    moved = lambda d, sign: policy(flat0 + sign * h * tf.one_hot(d, S, dtype=h.dtype), theta_q)
    slope = tf.stack([(moved(d, 1.0) - moved(d, -1.0)) / (2 * h[:, d:d + 1])
                      for d in range(S)], axis=2)                           # [Q b, n_pol, S]

  def residuals(c, today_shift):
    """Residuals `[b, n_res]` with the policy moved by `e(s) = c phi(s)` (`c` `[b, n_pol, B]`)
    and today's policies moved by `today_shift` `[b, n_pol]`, tomorrow's state following."""
    today = today0 + tf.einsum("bjk,bk->bj", c, phi) + today_shift
    flat = tf.reshape(economy.step(state, theta, eps, today), [-1, S])
    tomorrow = tomorrow0
    if economy.endogenous_states:
      tomorrow = tomorrow + tf.einsum("rjs,rs->rj", slope, flat - flat0)
    phi_next = tf.reshape(basis(flat, tile(mean), tile(std)), tf.stack([Q, b, B]))
    tomorrow = tf.reshape(tomorrow, tf.stack([Q, b, n_pol])) + tf.einsum("bjk,qbk->qbj", c,
                                                                          phi_next)
    return economy.equilibrium(state, theta, eps, today, tomorrow, weights)

  zero_c = tf.zeros(tf.stack([b, n_pol, B]), state.dtype)
  zero_t = tf.zeros(tf.stack([b, n_pol]), state.dtype)
  r = residuals(zero_c, zero_t)                                             # [b, n_res]
  columns = []
  for j in range(n_pol):
    for k in range(B):
      direction = tf.one_hot(tf.fill([b], j * B + k), n_pol * B, dtype=state.dtype)
      with tf.autodiff.ForwardAccumulator(zero_c, tf.reshape(direction, [-1, n_pol, B])) as acc:
        out = residuals(zero_c, zero_t)
      columns.append(acc.jvp(out))                                          # [b, n_res]
  dr_dc = tf.stack(columns, axis=2)                                         # [b, n_res, n_pol*B]
  newton = []
  for j in range(n_pol):   # today's error alone, tomorrow held: time iteration's Newton matrix
    with tf.autodiff.ForwardAccumulator(zero_t, tf.one_hot(tf.fill([b], j), n_pol,
                                                           dtype=state.dtype)) as acc:
      held = economy.equilibrium(state, theta, eps, today0 + zero_t,
                                 tf.reshape(tomorrow0, tf.stack([Q, b, n_pol])), weights)
    newton.append(acc.jvp(held))
  J_p = tf.stack(newton, axis=2)                                            # [b, n_res, n_pol]
  rows = tf.linalg.solve(J_p, dr_dc) / scale[:, :, None]
  rhs = -tf.linalg.solve(J_p, r[..., None])[..., 0] / scale
  return rows, rhs


def estimate(economy, policy, theta, state, scale, nodes=None, fit=None):
  """Estimated policy errors `[n, m, n_pol]` in percent of `scale` at the states `state`
  `[n, m, n_state]` of each theta `theta` `[n, n_params]` (NumPy), from the residuals of
  `policy(state [k, S], theta [k, P]) -> [k, n_pol]` alone; `scale` `[n, n_pol]` is each
  policy's size at that theta (the metric's denominator: its ergodic std). Signed: policy
  minus the equilibrium policy it estimates.

  `fit`: `(states [n, k, n_state], weights [n, k])` where the error is fitted, default `state`
  equally weighted. The states should carry the ergodic law: a persistent error is seen
  through `(1 - beta)` of itself, so any part of the error that is not affine and whose
  sample mean today differs from its mean tomorrow (as on states spread evenly over +-2.5 std,
  where the tails weigh as much as the centre) is read, amplified, as a level error."""
  theta = np.asarray(theta, np.float64)
  state = np.asarray(state, np.float64)
  n, m, S = state.shape
  fit_state, fit_weight = (state, np.ones((n, m))) if fit is None else (
      np.asarray(a, np.float64) for a in fit)
  k = fit_state.shape[1]
  n_pol = len(economy.policy_names)
  fit_weight = fit_weight / fit_weight.sum(axis=1, keepdims=True)
  mean = np.einsum("nk,nks->ns", fit_weight, fit_state)                        # [n, S]
  std = np.sqrt(np.einsum("nk,nks->ns", fit_weight, (fit_state - mean[:, None]) ** 2)) + 1e-12
  eps, w = quadrature(economy.n_shock, nodes or NODES.get(economy.n_shock, 8))
  eps, w = tf.constant(eps), tf.constant(w)
  f32, f64 = tf.float32, tf.float64
  policy64 = lambda s, t: tf.cast(policy(tf.cast(s, f32), tf.cast(t, f32)), f64)
  # Any chunk size: traced once (the last, shorter chunk would trace the whole system again).
  spec = lambda d: tf.TensorSpec([None, d], f64)
  call = tf.function(lambda *a: _system(economy, policy64, *a, eps, w),
                     input_signature=[spec(S), spec(theta.shape[1]), spec(S), spec(S),
                                      spec(n_pol)])
  rows, rhs = [], []
  repeat = lambda a: np.repeat(a, k, axis=0)
  flat = [fit_state.reshape(-1, S), repeat(theta), repeat(mean), repeat(std),
          repeat(np.asarray(scale, np.float64))]
  for i in range(0, n * k, CHUNK):
    r, h = call(*(tf.constant(a[i:i + CHUNK]) for a in flat))
    rows.append(r.numpy())
    rhs.append(h.numpy())
  root = np.sqrt(fit_weight)[:, :, None]                                       # [n, k, 1]
  A = (np.concatenate(rows).reshape(n, k, n_pol, -1) * root[..., None]).reshape(n, k * n_pol, -1)
  y = (np.concatenate(rhs).reshape(n, k, n_pol) * root).reshape(n, k * n_pol)
  c = np.stack([np.linalg.lstsq(A[i], y[i], rcond=None)[0] for i in range(n)])  # [n, n_pol*B]
  phi = np.concatenate([np.ones((n, m, 1)), (state - mean[:, None]) / std[:, None]], axis=2)
  # `c phi` is the correction that zeroes the residuals (equilibrium minus policy), in policy
  # units: the scale only weighted the equations.
  c = c.reshape(n, n_pol, 1 + S)
  return -100.0 * np.einsum("njk,nmk->nmj", c, phi) / np.asarray(scale)[:, None, :]
