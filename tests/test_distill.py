"""The distill regime: its targets are the economy's reference at its own points, and it learns."""

import numpy as np
import pytest
import tensorflow as tf

from nk_keras import accuracy, economies, regimes, training
from nk_keras.errors import UserError
from nk_keras.network import ExtendedPolicy


def examples(economy, thetas, batch, step=3):
  model = regimes.build("distill", ExtendedPolicy.create(economy, "ergodic"), batch=batch,
                        thetas=thetas)
  return model, [t.numpy() for t in model.examples(model.step_seeds(step, 4))[:4]]


def test_nk_targets_are_the_closed_form_at_the_points():
  nk = economies.get("nk")
  model, (theta, state, target, scale) = examples(nk, thetas=50, batch=400)
  exact = nk.closed_form(tf.constant(state), tf.constant(theta)).numpy()
  np.testing.assert_allclose(target, exact, rtol=1e-4, atol=1e-9)
  reference = nk.reference(theta.astype(np.float64))
  np.testing.assert_allclose(scale, reference.scale(), rtol=1e-5)
  z = state[:, 0] / nk.ergodic_std(tf.constant(theta)).numpy()[:, 0]
  assert z.min() >= -regimes.DISTILL_SPAN and z.max() <= regimes.DISTILL_SPAN
  assert np.abs(z).max() > 0.9 * regimes.DISTILL_SPAN   # the whole span is drawn
  assert len(np.unique(theta[:, 0])) > 40               # from the whole pool


def test_rank_zlb_targets_are_time_iteration_at_the_points(monkeypatch):
  zlb = economies.get("rank_zlb")
  solved = {}
  solve = zlb.training_reference

  def keep(theta, progress=False):   # the regime's own solve, kept (a second one costs ~25 s)
    solved["pool"] = solve(theta, progress)
    return solved["pool"]

  monkeypatch.setattr(zlb, "training_reference", keep)
  model, (theta, state, target, scale) = examples(zlb, thetas=4, batch=300)
  pool = solved["pool"]
  rows = np.argmin(np.abs(pool.theta[None, :, :] - theta[:, None, :]).sum(-1), axis=1)
  np.testing.assert_allclose(pool.theta[rows], theta, rtol=1e-6)          # each point's theta
  points = np.arange(len(theta))
  states = np.zeros((len(pool.theta), len(theta), 1))
  states[rows, points] = state                                            # point k on its row
  exact = pool.policies(states)[rows, points]                             # [batch, n_pol]
  # In units of the metric: the table (spacing 0.005 std) read back to 1e-3 % of the scale.
  np.testing.assert_allclose(100 * (target - exact) / scale, 0.0, atol=1e-3)
  np.testing.assert_allclose(scale, pool.scale()[rows], rtol=1e-5)


@pytest.mark.lane
def test_distill_learns_the_nk_policy():
  options = training.TrainOptions(economy="nk", regime="distill", iterations=1500, batch=256,
                                  distill_thetas=500, normalization="ergodic")
  model = training.build_regime(options)
  points = accuracy.Points(model.economy, n_theta=300, seed=1)
  before = points.errors(model.policy).mean()
  training.fit(model, options, verbose=False)
  after = points.errors(model.policy).mean()
  assert after < 10.0 and after < before / 10, (before, after)


def test_an_economy_without_a_reference_is_refused_by_name():
  nk = economies.get("nk")

  class NoReference(type(nk)):
    name = "no_reference"

    def closed_form(self, state, theta):
      return None

  with pytest.raises(UserError, match="distill regime.*'no_reference' has none"):
    regimes.build("distill", ExtendedPolicy.create(NoReference(), "ergodic"), batch=8, thetas=4)
