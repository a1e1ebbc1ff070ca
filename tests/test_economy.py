"""The NK economy: closed form, residuals, shapes and the law of motion of the state."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from nk_keras import economies

tfd = tfp.distributions
NK = economies.get("nk")
SEED = tf.constant([3, 4], tf.int32)


def draws(batch=512, mc=10, seed=0):
  s = tf.random.experimental.stateless_split(tf.constant([seed, 1], tf.int32), 3)
  theta = NK.draw_theta(batch, s[0])
  return theta, NK.draw_state(theta, s[1]), NK.draw_shocks(mc, batch, s[2])


def closed_form(state, theta):
  return NK.closed_form(state, theta)


def test_closed_form_matches_the_seed_check_point():
  x = NK.closed_form(tf.constant([[0.01]]), tf.constant(NK.calibration[None], tf.float32))
  np.testing.assert_allclose(x.numpy()[0], [0.002992, 0.008504], atol=5e-7)


def test_closed_form_has_float32_roundoff_residuals():
  theta, state, eps = draws()
  res = NK.residuals(closed_form, state, theta, eps) / NK.ergodic_std(theta)
  # Each residual is a sum of O(1) terms (in ergodic std) computed in float32 (eps 1.2e-7).
  assert np.max(np.abs(res.numpy())) < 1e-5


@pytest.mark.parametrize("which", [0, 1])
def test_perturbed_policy_has_visible_residuals(which):
  theta, state, eps = draws()
  bump = np.ones(2, np.float32)
  bump[which] = 1.01  # 1 % error in one policy
  res = NK.residuals(lambda s, t: closed_form(s, t) * bump, state, theta, eps)
  res = res / NK.ergodic_std(theta)
  assert np.sqrt(np.mean(res.numpy() ** 2)) > 1e-4


def test_shapes():
  theta, state, eps = draws(batch=7, mc=6)
  assert theta.shape == (7, 8) and state.shape == (7, 1) and eps.shape == (6, 7, 1)
  np.testing.assert_array_equal(eps[:3].numpy(), -eps[3:].numpy())  # antithetic pairs
  assert NK.step(state, theta, eps[0], None).shape == (7, 1)
  assert NK.step(state, theta, eps, None).shape == (6, 7, 1)
  today, tomorrow = NK.policies(closed_form, state, theta, eps)
  assert today.shape == (7, 2) and tomorrow.shape == (6, 7, 2)
  assert NK.residuals(closed_form, state, theta, eps).shape == (7, 2)


def test_step_is_the_ar1_of_model_md():
  theta = tf.constant(NK.calibration[None], tf.float32)
  p = dict(zip(NK.param_names, NK.calibration))
  omega = (1 + p["eta"]) / (p["sigma"] + p["eta"])
  s_eps = p["sigma_a"] * p["sigma"] * (p["rho_a"] - 1) * omega
  out = NK.step(tf.constant([[0.02]]), theta, tf.constant([[1.5]]), None)
  np.testing.assert_allclose(out.numpy(), [[p["rho_a"] * 0.02 + s_eps * 1.5]], rtol=1e-6)


def test_prior_is_uniform_on_the_box_and_replaceable():
  theta = NK.draw_theta(20000, SEED).numpy()
  assert (theta >= NK.box_low - 1e-7).all() and (theta <= NK.box_high + 1e-7).all()
  np.testing.assert_allclose(theta.mean(0), (NK.box_low + NK.box_high) / 2,
                             atol=0.02 * (NK.box_high - NK.box_low).max())
  cal = tf.constant(NK.calibration, tf.float32)
  narrow = tfd.Independent(tfd.TruncatedNormal(
      cal, 0.01 * cal, NK.box_low.astype(np.float32), NK.box_high.astype(np.float32)), 1)
  other = economies.get("nk", prior=narrow)
  np.testing.assert_allclose(other.draw_theta(5000, SEED).numpy().mean(0), NK.calibration,
                             rtol=0.01)


def test_outside_box_names_the_offenders():
  theta = NK.calibration.copy()
  assert NK.outside_box(theta) == []
  theta[0], theta[7] = 0.999, np.nan
  assert NK.outside_box(theta) == ["beta", "sigma_a"]
