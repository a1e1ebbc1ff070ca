"""Regimes: where the points come from (shapes, distribution of stepped states, alignment)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from nk_keras import economies, regimes
from nk_keras.network import ExtendedPolicy

tfd = tfp.distributions


def make(regime, economy=None, **options):
  economy = economy or economies.get("nk")
  return regimes.build(regime, ExtendedPolicy.create(economy), **options)


def run_points(model, steps):
  """Points of gradient steps 0..steps-1, as `train_step` would draw them."""
  out = []
  for step in range(steps):
    seeds = model.step_seeds(step, 4)
    out.append([t.numpy() for t in model.points(tf.constant(step, tf.int64), seeds[:3])])
  return out


@pytest.mark.parametrize("regime,options", [
    ("fresh", {}), ("cached", {"pool": 250}), ("internal", {"internal": 3}),
    ("stepping", {"internal": 3, "num_steps": 4, "redraw_every": 2})])
def test_points_have_pinned_shapes(regime, options):
  model = make(regime, batch=50, mc=4, **options)
  for theta, state in run_points(model, 7):
    assert theta.shape == (50, 8) and state.shape == (50, 1)
    assert np.isfinite(state).all()


def test_internal_keeps_points_for_internal_steps_then_renews():
  pts = run_points(make("internal", batch=20, internal=3), 7)
  np.testing.assert_array_equal(pts[0][0], pts[2][0])
  assert not np.array_equal(pts[2][0], pts[3][0])
  np.testing.assert_array_equal(pts[3][1], pts[5][1])


def test_cached_cycles_its_pool():
  pts = run_points(make("cached", batch=20, pool=60), 4)
  np.testing.assert_array_equal(pts[0][0], pts[3][0])
  assert not np.array_equal(pts[0][0], pts[1][0])


def test_stepping_redraws_theta_only_every_redraw_every_iterations():
  pts = run_points(make("stepping", batch=20, internal=2, redraw_every=3, num_steps=1), 12)
  thetas = [p[0] for p in pts[::2]]                   # one per iteration
  np.testing.assert_array_equal(thetas[0], thetas[2])
  assert not np.array_equal(thetas[2], thetas[3])
  states = [p[1] for p in pts[::2]]
  assert not np.array_equal(states[0], states[1])     # stepped every iteration


def test_stepped_states_have_the_ergodic_variance():
  nk = economies.get("nk")
  fixed = economies.get("nk", prior=tfd.Independent(
      tfd.Deterministic(tf.constant(nk.calibration, tf.float32)), 1))
  n = 20_000
  model = make("stepping", fixed, batch=n, internal=1, num_steps=10, redraw_every=1)
  _, state = run_points(model, 30)[-1]                # 300 AR(1) steps: rho^300 ~ 4e-18
  sigma_erg = float(fixed.ergodic_std(tf.constant(nk.calibration[None], tf.float32))[0, 0])
  # The sample variance of n normal draws has relative std sqrt(2/(n-1)) = 1.0 %; 5 of those
  # is 5 %. The seed's [1, batch] x [batch] broadcast would give a [batch, batch] state or, with
  # a shock shared across points, a cross-section of variance ~0: both fail here.
  assert state.shape == (n, 1)
  assert abs(state.var() / sigma_erg ** 2 - 1) < 5 * np.sqrt(2 / (n - 1))
  assert abs(state.mean()) < 5 * sigma_erg / np.sqrt(n)


def test_redraws_keep_theta_and_state_aligned():
  """After many redraws, each state measured in its own theta's ergodic std is N(0, 1)."""
  nk = economies.get("nk")
  n = 20_000
  model = make("stepping", nk, batch=n, internal=1, num_steps=10, redraw_every=1)
  theta, state = run_points(model, 30)[-1]
  z = state / nk.ergodic_std(tf.constant(theta)).numpy()
  assert abs(z.var() - 1) < 5 * np.sqrt(2 / (n - 1))
  # Had states kept their raw values across redraws, z would have a variance several times 1
  # (ergodic std varies ~20x across the box).


def same(a, b):
  return np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_fresh_draws_new_theta_and_state_at_every_step():
  pts = run_points(make("fresh", batch=20), 4)
  for a, b in zip(pts, pts[1:]):
    assert not np.isin(a[0], b[0]).any() and not np.isin(a[1], b[1]).any()


def test_cached_steps_through_its_pool_in_order():
  model = make("cached", batch=20, pool=60)
  pts = run_points(model, 6)
  pool = model.pool_theta.numpy()
  for step, (theta, _) in enumerate(pts):   # consecutive slices, wrapping after 3 steps
    np.testing.assert_array_equal(theta, pool[(step % 3) * 20:(step % 3 + 1) * 20])
  assert same(pts[0], pts[3]) and same(pts[2], pts[5])


def test_internal_renews_theta_and_state_exactly_every_internal_steps():
  pts = run_points(make("internal", batch=20, internal=3), 9)
  for step in range(1, 9):
    renewed = step % 3 == 0
    assert same(pts[step - 1], pts[step]) != renewed, step
    if renewed:   # both renewed, not one kept
      assert not np.isin(pts[step][0], pts[step - 1][0]).any()
      assert not np.isin(pts[step][1], pts[step - 1][1]).any()


def test_stepping_steps_the_state_every_iteration_and_redraws_theta_on_schedule():
  internal, redraw = 2, 3
  pts = run_points(make("stepping", batch=20, internal=internal, redraw_every=redraw,
                        num_steps=1), 2 * internal * redraw + internal)
  for step in range(1, len(pts)):
    theta_same = np.array_equal(pts[step][0], pts[step - 1][0])
    state_same = np.array_equal(pts[step][1], pts[step - 1][1])
    iteration, starts = divmod(step, internal)
    assert state_same == (starts != 0), step          # held within an iteration, then stepped
    assert theta_same == (starts != 0 or iteration % redraw != 0), step


def test_an_agent_set_counts_in_the_loss_as_one_equation():
  """Each household's Euler equation weighs 1 / L, the NKPC 1; a weight by group name applies
  to every household, one by column name to that household alone."""
  economy = economies.get("hank_zlb", agents=4)
  build = lambda **w: regimes.build("fresh", ExtendedPolicy.create(economy), batch=4, mc=2,
                                    weighting="none", loss_weights=w).loss_weights.numpy()
  np.testing.assert_allclose(build(), [1, 0.25, 0.25, 0.25, 0.25])
  np.testing.assert_allclose(build(Euler=2.0, Euler_3=4.0, NKPC=3.0), [3, 0.5, 0.5, 0.5, 1.0])
  with pytest.raises(ValueError, match="Eular"):
    build(Eular=1.0)
