"""The residual-only error estimate recovers an error put into an exact policy."""

import numpy as np
import tensorflow as tf

from nk_keras import economies, error_estimate, simulation


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
