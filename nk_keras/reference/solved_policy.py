"""Time iteration as a policy for the particle filter: solved at a batch of thetas, interpolated
in the filter's compiled loop.

The filter evaluates `n` thetas with `particles` particles each and calls its policy with
`[n * particles]` rows, theta-major (each theta's particles contiguous). `SolvedPolicy` is told
the thetas first (`solve_at`, which runs time iteration on all of them at once, float64) and
keeps their policy tables in `tf.Variable`s, so the filter's one compiled function reads the
tables of whichever chunk it runs on; its call then finds row i's table by position and
refuses rows whose theta is not the one solved there.
"""

import numpy as np
import tensorflow as tf

from nk_keras.reference import time_iteration


class SolvedPolicy:
  """`policy(state [m, 1], theta [m, P]) -> [m, n_pol]` (float32, like a network) from the
  time-iteration tables of the `n` thetas of the last `solve_at`, `m` a multiple of `n`."""

  def __init__(self, economy, **options):
    """`options`: those of `time_iteration.solve_block` (grid, nodes, tolerance)."""
    time_iteration.one_dimensional(economy)
    self.economy, self.options = economy, options
    self.span = float(options.get("span", 5.0))
    n_pol, P = len(economy.policy_names), economy.n_params
    variable = lambda shape: tf.Variable(tf.zeros([d or 1 for d in shape]), trainable=False,
                                         shape=tf.TensorShape(shape))
    self.values = variable([None, None, n_pol])   # [n, G, n_pol] on each theta's z grid
    self.std = variable([None])                   # [n] ergodic std of the state
    self.theta = variable([None, P])              # [n, P] the thetas solved

  def solve_at(self, theta):
    """Solves at `theta` `[n, P]` (NumPy) and holds the tables; returns `valid` `[n]` (False
    where time iteration finds no stable equilibrium; the table there is zeros, so a filter run
    on it stays finite and its value is discarded)."""
    reference = time_iteration.solve(self.economy, theta, **self.options)
    values = np.where(reference.valid[:, None, None], reference.values, 0.0)
    self.values.assign(values.astype(np.float32))
    self.std.assign(reference.std.astype(np.float32))
    self.theta.assign(np.asarray(theta, np.float32))
    return reference.valid

  def __call__(self, state, theta):
    m, n = tf.shape(state)[0], tf.shape(self.theta)[0]
    rows = tf.range(m) // (m // n)                                        # [m] table of each row
    tf.debugging.assert_equal(m % n, 0, "rows are not a multiple of the thetas solved")
    tf.debugging.assert_equal(tf.gather(self.theta, rows), tf.cast(theta, tf.float32),
                              "a row's theta is not the one solved at its position")
    G = tf.shape(self.values)[1]
    z = tf.cast(state[:, 0], tf.float32) / tf.gather(self.std, rows)
    # Linear interpolation on the uniform z grid, extrapolated beyond its ends (time
    # iteration's own convention).
    u = (z + self.span) * tf.cast(G - 1, tf.float32) / (2 * self.span)
    lo = tf.clip_by_value(tf.floor(u), 0.0, tf.cast(G - 2, tf.float32))
    frac = (u - lo)[:, None]
    flat = tf.reshape(self.values, [n * G, -1])                           # [n*G, n_pol]
    left = rows * G + tf.cast(lo, tf.int32)
    return tf.gather(flat, left) * (1 - frac) + tf.gather(flat, left + 1) * frac
