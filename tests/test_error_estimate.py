"""The residual-only error estimate recovers an error put into an exact policy."""

import numpy as np
import tensorflow as tf

from nk_keras import accuracy, economies, error_estimate, simulation


def test_a_persistent_level_error_of_the_closed_form_is_recovered():
  # A level error of inflation is the hard case: it moves the Phillips curve by (1 - beta) of
  # itself only, so one Newton step (tomorrow held) sees a hundredth of it.
  economy = economies.get("nk")
  theta = economy.calibration[None].astype(np.float64)
  state = simulation.ergodic_states(economy, lambda s, t: economy.closed_form(s, t), theta, 16, 0)
  scale = np.asarray(economy.policy_scale(tf.constant(theta)))                 # [1, n_pol]
  error = np.array([0.0, 0.05]) * scale[0]         # 5 % of inflation's scale, none in X

  def wrong(s, t):
    return economy.closed_form(s, t) + tf.constant(error, s.dtype)

  estimate = error_estimate.estimate(economy, wrong, theta, state, scale)      # [1, 16, n_pol]
  np.testing.assert_allclose(estimate[..., 1], 5.0, rtol=0.05)
  np.testing.assert_allclose(estimate[..., 0], 0.0, atol=0.25)


def test_an_error_with_the_same_ergodic_mean_tomorrow_is_not_read_as_a_level():
  # Inflation off by 5 % of its scale plus a curvature `a (z^2 - 1)` (z: the state in ergodic
  # std), whose ergodic mean is the same today and tomorrow. On the metric's evenly spread
  # levels z^2 averages 2, not 1: fitted there, the curvature's residuals read as a level error
  # amplified by 1 / (1 - beta) (this was a 5x overstatement on rank_zlb, BUILD_NOTES).
  economy = economies.get("nk")
  points = accuracy.Points(economy, 4, seed=0)
  a = 0.05

  def wrong(s, t):
    std = tf.cast(economy.ergodic_std(t), s.dtype)                              # [n, 1]
    scale = tf.abs(economy.closed_form(std, t))   # the metric's: the policy at 1 ergodic std
    z = s / std
    shift = scale[:, 1:] * (0.05 + a * (z ** 2 - 1))
    return economy.closed_form(s, t) + tf.concat([tf.zeros_like(shift), shift], axis=1)

  report = accuracy.estimated_error(economy, wrong, points, seed=0)
  assert abs(report["Pi"]["mean"] / 5.0 - 1) < 0.1, report["Pi"]
