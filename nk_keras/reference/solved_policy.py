"""Policies as tables for the particle filter: time iteration's solution, or any policy (a
network) tabulated, at a batch of thetas, interpolated in the filter's compiled loop.

The filter evaluates `n` thetas with `particles` particles each and calls its policy with
`[n * particles]` rows, theta-major (each theta's particles contiguous). A `TabulatedPolicy` is
told the thetas first (`tabulate`, by the filter, per chunk) and keeps their policy tables in
`tf.Variable`s, so the filter's one compiled function reads the tables of whichever chunk it
runs on; its call then finds row i's table by position and refuses rows whose theta is not the
one tabulated there. Both kinds share the grid (uniform in z = state / ergodic std, on
+-`span`) and the interpolation (linear, extrapolated beyond the ends: time iteration's own
convention), so a network and the exact policy are read the same way.
"""

import numpy as np
import tensorflow as tf

from nk_keras.reference import time_iteration


class TabulatedPolicy:
  """`policy(state [m, 1], theta [m, P]) -> [m, n_pol]` (float32, like a network) from the
  tables `[n, G, n_pol]` of the `n` thetas of the last `tabulate`, `m` a multiple of `n`.

  This class tabulates `policy` itself (any callable `(state, theta) -> [m, n_pol]`, e.g. a
  network) at `n_grid` points: the filter then calls the policy `G` times per theta instead of
  `particles x periods` times."""

  def __init__(self, economy, policy=None, n_grid=1001, span=5.0):
    time_iteration.one_dimensional(economy)
    self.economy, self.policy, self.span = economy, policy, float(span)
    self.grid = np.linspace(-self.span, self.span, int(n_grid))               # [G] in z
    n_pol, P = len(economy.policy_names), economy.n_params
    variable = lambda shape: tf.Variable(tf.zeros([d or 1 for d in shape]), trainable=False,
                                         shape=tf.TensorShape(shape))
    self.values = variable([None, None, n_pol])   # [n, G, n_pol] on each theta's z grid
    self.std = variable([None])                   # [n] ergodic std of the state
    self.theta = variable([None, P])              # [n, P] the thetas tabulated

  def tabulate(self, theta):
    """Tables of the policy at `theta` `[n, P]` (NumPy); returns `valid` `[n]` (all True: a
    network answers everywhere; the pipeline keeps its draws in the domain)."""
    theta = np.asarray(theta, np.float32)
    n, G = len(theta), len(self.grid)
    std = self.economy.ergodic_std(tf.constant(theta)).numpy()[:, 0]          # [n]
    state = (std[:, None] * self.grid[None, :]).reshape(-1, 1).astype(np.float32)
    values = np.asarray(self.policy(tf.constant(state), tf.constant(np.repeat(theta, G, axis=0))))
    self._hold(theta, values.reshape(n, G, -1), std)
    return np.ones(n, bool)

  def _hold(self, theta, values, std):
    self.values.assign(np.asarray(values, np.float32))
    self.std.assign(np.asarray(std, np.float32))
    self.theta.assign(np.asarray(theta, np.float32))

  def __call__(self, state, theta):
    m, n = tf.shape(state)[0], tf.shape(self.theta)[0]
    rows = tf.range(m) // (m // n)                                        # [m] table of each row
    tf.debugging.assert_equal(m % n, 0, "rows are not a multiple of the thetas tabulated")
    tf.debugging.assert_equal(tf.gather(self.theta, rows), tf.cast(theta, tf.float32),
                              "a row's theta is not the one tabulated at its position")
    G = tf.shape(self.values)[1]
    z = tf.cast(state[:, 0], tf.float32) / tf.gather(self.std, rows)
    u = (z + self.span) * tf.cast(G - 1, tf.float32) / (2 * self.span)
    lo = tf.clip_by_value(tf.floor(u), 0.0, tf.cast(G - 2, tf.float32))
    frac = (u - lo)[:, None]
    flat = tf.reshape(self.values, [n * G, self.values.shape[-1]])        # [n*G, n_pol]
    left = rows * G + tf.cast(lo, tf.int32)
    return tf.gather(flat, left) * (1 - frac) + tf.gather(flat, left + 1) * frac


class SolvedPolicy(TabulatedPolicy):
  """Time iteration as a tabulated policy: `tabulate` solves at the thetas (all at once,
  float64) and holds the solution on time iteration's own grid."""

  def __init__(self, economy, **options):
    """`options`: those of `time_iteration.solve_block` (grid, nodes, tolerance)."""
    super().__init__(economy, n_grid=options.get("n_grid", time_iteration.N_GRID),
                     span=options.get("span", 5.0))
    self.options = options

  def tabulate(self, theta):
    """Solves at `theta` `[n, P]` (NumPy) and holds the tables; returns `valid` `[n]` (False
    where time iteration finds no stable equilibrium; the table there is zeros, so a filter run
    on it stays finite and its value is discarded)."""
    reference = time_iteration.solve(self.economy, theta, **self.options)
    self._hold(theta, np.where(reference.valid[:, None, None], reference.values, 0.0),
               reference.std)
    return reference.valid
