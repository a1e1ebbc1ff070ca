"""The shifted-grid expectations and the per-theta level term of the regimes' loss."""

import numpy as np
import pytest
import tensorflow as tf

from nk_keras import economies, regimes
from nk_keras.errors import UserError
from nk_keras.network import ExtendedPolicy


def grid(n, batch, seed):
  return economies.get("nk").shock_grid(n, batch, tf.constant([seed, 0], tf.int32))


def test_grid_is_exact_for_a_smooth_integrand_at_every_shift():
  eps, w = grid(12, 500, 1)
  a = 0.5
  value = tf.reduce_sum(w * tf.exp(a * eps[..., 0]), axis=0).numpy()   # one per shift
  # exp(a^2/2), less the mass beyond the grid: +-(5 - h/2) at worst, 2.2e-5 of it at a = 0.5.
  np.testing.assert_allclose(value, np.exp(a * a / 2), rtol=3e-5)
  assert eps.shape == (12, 500, 1)
  assert np.ptp(eps.numpy()[..., 0], axis=1).min() > 0   # every point its own shift


def test_grid_is_unbiased_and_far_less_noisy_than_draws_at_a_kink():
  eps, w = grid(12, 20_000, 2)
  value = tf.reduce_sum(w * tf.maximum(eps[..., 0], 0.0), axis=0).numpy()      # E[max(eps, 0)]
  truth = 1 / np.sqrt(2 * np.pi)
  # One shift's error has std ~0.011 (an O(h^2) corner cut), against 0.58 / sqrt(12) = 0.17 for
  # 12 Monte Carlo draws; over 20,000 shifts the mean is the integral to ~8e-5 (one std).
  assert value.std() < 0.02
  assert abs(value.mean() - truth) < 3e-4


def test_a_product_grid_takes_expectations_over_several_shocks():
  """rank_zlb_inertia's two shocks: 8 x 8 nodes, each shock shifted on its own per point."""
  economy = economies.get("rank_zlb_inertia")
  eps, w = economy.shock_grid(8, 300, tf.constant([3, 0], tf.int32))
  assert eps.shape == (64, 300, 2) and w.shape == (64, 300)
  a, b = 0.4, -0.3
  value = tf.reduce_sum(w * tf.exp(a * eps[..., 0] + b * eps[..., 1]), axis=0).numpy()
  # exp((a^2 + b^2) / 2) at every shift, less the mass beyond +-(5 - h/2) (h = 1.25).
  np.testing.assert_allclose(value, np.exp((a * a + b * b) / 2), rtol=2e-3)
  np.testing.assert_allclose(tf.reduce_sum(w * eps[..., 0] * eps[..., 1], axis=0).numpy(), 0.0,
                             atol=1e-3)                                 # independent shocks
  nodes = eps.numpy()
  assert len(np.unique(nodes[:, 0, 0])) == 8 and len(np.unique(nodes[:, 0, 1])) == 8
  assert not np.allclose(nodes[0, :, 0], nodes[0, :, 1])               # shifts not shared


def test_a_product_grid_too_large_is_refused_by_name():
  """A HANK's households each have a shock: 2 ** 51 nodes."""
  with pytest.raises(UserError, match=r"2 \*\* 51 = [0-9,]+ nodes per point for economy "
                                      r"'hank_zlb'"):
    economies.get("hank_zlb").shock_grid(2, 10, tf.constant([0, 0]))


def test_expect_takes_weights_per_point():
  x = tf.constant([[1.0, 2.0], [3.0, 5.0]])                            # [k, batch]
  w = tf.constant([[0.25, 0.5], [0.75, 0.5]])
  np.testing.assert_allclose(economies.get("nk").expect(x, w).numpy(), [2.5, 3.5])
  np.testing.assert_allclose(economies.get("nk").expect(x, tf.constant([0.5, 0.5])).numpy(),
                             [2.0, 3.5])


def level_regime(G=4, **options):
  economy = economies.get("nk")
  return regimes.build("fresh", ExtendedPolicy.create(economy), batch=8 * G, mc=4,
                       weighting="newton", level_states=G, **options)


def test_theta_comes_in_groups_of_level_states():
  model = level_regime(G=4)
  theta, state = model.points(0, model.step_seeds(0, 4)[:3])
  groups = theta.numpy().reshape(8, 4, -1)
  np.testing.assert_array_equal(groups, np.repeat(groups[:, :1], 4, axis=1))
  assert len(np.unique(groups[:, 0, 0])) == 8
  assert len(np.unique(state.numpy())) == 32                           # a state per point


def test_level_term_recovers_a_persistent_inflation_error():
  """NK is linear, so an inflation level error `d` gives residuals J_level d exactly: the level
  term returns it (in ergodic std), where time iteration's Newton step (tomorrow held) puts most
  of it on the output gap."""
  model = level_regime(G=4)
  economy = model.economy
  theta, state = model.points(0, model.step_seeds(0, 4)[:3])
  eps, _ = model.shocks(model.step_seeds(0, 4)[3])
  d = 1e-3
  shifted = lambda s, t: economy.closed_form(s, t) + tf.constant([0.0, d])
  today, tomorrow = economy.policies(shifted, state, theta, eps)
  std = economy.residual_scale(theta)                                  # [batch]
  residuals = economy.equilibrium(state, theta, eps, today, tomorrow) / std[:, None]
  level = model.level_errors(theta, state, eps, today, tomorrow, None, residuals).numpy()
  expected = np.stack([np.zeros(8), d / std.numpy()[::4]], axis=1)
  np.testing.assert_allclose(level, expected, rtol=2e-3, atol=1e-3 * np.abs(expected).max())
  jacobian = model.jacobian(theta, state, eps, today, tomorrow, None, "today", std)
  newton = tf.linalg.solve(jacobian, residuals[..., None])[..., 0].numpy()
  assert (np.abs(newton[:, 1]) < 0.5 * np.abs(expected[:, 1]).repeat(4)).all()


@pytest.mark.parametrize("name", ["nk", "rank_zlb_inertia"])
def test_the_level_jacobian_is_the_response_to_the_shifted_policy_function(name):
  """The level term's Jacobian: the residuals' response to the whole policy shifted by a
  constant, here by central differences of the residuals of the shifted network. For
  rank_zlb_inertia that moves tomorrow's lagged shadow rate too; held fixed, the Euler column's
  inflation entry is `(1 - rho_R) theta_pi - 1`, zero at the calibration."""
  economy = economies.get(name)
  model = regimes.build("fresh", ExtendedPolicy.create(economy, seed=1), batch=16, mc=4,
                        weighting="newton", level_states=4)
  seeds = model.step_seeds(0, 4)
  theta, state = model.points(0, seeds[:3])
  eps, _ = model.shocks(seeds[3])
  at = model.policy.at(theta)
  today, tomorrow = economy.policies(at, state, theta, eps)
  jacobian = model.jacobian(theta, state, eps, today, tomorrow, None, "level", None).numpy()
  d = 1e-3
  for j in range(len(economy.policy_names)):
    unit = d * tf.one_hot(j, len(economy.policy_names))
    up, down = [economy.residuals(lambda s, t, u=u: at(s, t) + u, state, theta, eps)
                for u in (unit, -unit)]
    np.testing.assert_allclose(jacobian[:, :, j], ((up - down) / (2 * d)).numpy(), rtol=2e-2,
                               atol=2e-2 * np.abs(jacobian).max())


def test_level_term_enters_the_loss_with_its_weight():
  model = level_regime(G=4)
  theta, state = model.points(0, model.step_seeds(0, 4)[:3])
  eps, _ = model.shocks(model.step_seeds(0, 4)[3])
  loss, mse, level = model.residual_loss(theta, state, eps)
  np.testing.assert_allclose(float(loss), float(tf.reduce_sum(mse) + tf.reduce_sum(level)),
                             rtol=1e-5)
  heavy = level_regime(G=4, level_weight=10.0)
  heavy.policy.net.set_weights(model.policy.net.get_weights())
  loss10, mse10, level10 = heavy.residual_loss(theta, state, eps)
  np.testing.assert_allclose(float(loss10),
                             float(tf.reduce_sum(mse10) + 10 * tf.reduce_sum(level10)),
                             rtol=1e-5)


def test_level_options_are_checked():
  economy = economies.get("nk")
  with pytest.raises(UserError, match="divide the batch"):
    regimes.build("fresh", ExtendedPolicy.create(economy), batch=10, mc=2, weighting="newton",
                  level_states=4)
  with pytest.raises(UserError, match="weighting"):
    regimes.build("fresh", ExtendedPolicy.create(economy), batch=8, mc=2, weighting="ergodic",
                  level_states=4)
