"""The generic first-order perturbation (nk_keras/perturbation.py) against closed forms."""

import numpy as np
import tensorflow as tf

from nk_keras import economies, perturbation

SEED = tf.constant([3, 4], tf.int32)


def test_rank_zlb_matches_its_closed_form_linearisation():
  economy = economies.get("rank_zlb")
  theta = tf.cast(economy.draw_theta(32, SEED), tf.float64)
  linear = perturbation.linearise(economy, theta)
  closed = economy.linear(theta)   # rank_zlb's own: the closed form, steady-state offsets dropped
  np.testing.assert_allclose(linear.transition.numpy(), closed.transition.numpy(), rtol=1e-10)
  np.testing.assert_allclose(linear.covariance.numpy(), closed.covariance.numpy(), rtol=1e-8)
  # The slopes differ by the steady state's small departures from Pibar and Ybar, which the
  # closed form drops (0.06 % for hours, 0.4 % for inflation at the calibration).
  np.testing.assert_allclose(linear.slopes.numpy(), closed.slopes.numpy(), rtol=1e-2)


def test_inertia_without_inertia_or_tfp_linearises_as_rank_zlb():
  inertia, rank_zlb = economies.get("rank_zlb_inertia"), economies.get("rank_zlb")
  theta5 = rank_zlb.draw_theta(16, SEED).numpy().astype(np.float64)
  # theta_pi, theta_y, phi, rho_R = 0, rho_zeta, sigma_zeta, rho_a, sigma_a
  theta8 = np.column_stack([theta5[:, :3], np.zeros(16), theta5[:, 3:], np.full(16, 0.9),
                            np.full(16, 0.005)])
  ours, theirs = (perturbation.linearise(e, tf.constant(t))
                  for e, t in ((inertia, theta8), (rank_zlb, theta5)))
  # The slopes on zeta (state 0) are rank_zlb's; rstar_lag does not matter without inertia.
  np.testing.assert_allclose(ours.slopes.numpy()[:, :, 0], theirs.slopes.numpy()[:, :, 0],
                             rtol=1e-7)
  np.testing.assert_allclose(ours.slopes.numpy()[:, :, 2], 0.0, atol=1e-9)
  np.testing.assert_allclose(ours.covariance.numpy()[:, 0, 0], theirs.covariance.numpy()[:, 0, 0],
                             rtol=1e-8)
