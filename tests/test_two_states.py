"""A toy economy with two states runs through the library: states `[batch, 2]`, shocks
`[mc, batch, 2]`, the network's normalisations, the regimes, a short training run, export,
simulation and the filters. It lives here only (not registered): the registered economies have
one state, and this is what keeps the `[batch, n_state]` code honest for the next ones.

The toy: two independent AR(1) states s1, s2 and two forward-looking policies,

    X = beta E X' + s1 + 0.5 s2,    Y = beta E Y' + kappa X + s2,

linear, so X = a1 s1 + a2 s2, Y = b1 s1 + b2 s2 with a_i = c_i / (1 - beta rho_i) (c = 1, 0.5)
and b_i = (kappa a_i + [i = 2]) / (1 - beta rho_i), all positive.
"""

import json
import numpy as np
import pytest
import tensorflow as tf

from nk_keras import accuracy, economies, export, regimes, simulation, training
from nk_keras.economies.base import IndependentStates
from nk_keras.errors import UserError
from nk_keras.estimation import data as data_lib
from nk_keras.estimation import kalman, particle_filter
from nk_keras.network import ExtendedPolicy
from nk_keras.reference import time_iteration

SEED = tf.constant([8, 9], tf.int32)


class TwoStates(IndependentStates):
  name = "two_states"
  param_names = ("beta", "kappa", "rho1", "rho2", "sigma1", "sigma2")
  state_names = ("s1", "s2")
  shock_names = ("e1", "e2")
  policy_names = ("X", "Y")
  residual_names = ("X_eq", "Y_eq")
  box_low = np.array([0.5, 0.1, 0.5, 0.5, 0.005, 0.005])
  box_high = np.array([0.8, 0.5, 0.9, 0.9, 0.02, 0.02])
  calibration = np.array([0.7, 0.3, 0.7, 0.8, 0.01, 0.01])
  response_signs = ((1.0, 1.0), (1.0, 1.0))
  error_shape = "level"
  weightings = ("none", "ergodic", "newton")

  def ergodic_std(self, theta):
    p = self.unpack(theta)
    return tf.stack([p["sigma1"] / tf.sqrt(1 - p["rho1"] ** 2),
                     p["sigma2"] / tf.sqrt(1 - p["rho2"] ** 2)], axis=1)

  def residual_scale(self, theta):
    # The forcing's size: both states enter each residual with a unit-order coefficient.
    return tf.norm(self.ergodic_std(theta), axis=1)

  def step(self, state, theta, eps, today):
    p = self.unpack(theta)
    rho = tf.stack([p["rho1"], p["rho2"]], axis=1)                 # [batch, 2]
    sigma = tf.stack([p["sigma1"], p["sigma2"]], axis=1)
    return rho * state + sigma * eps

  def equilibrium(self, state, theta, eps, today, tomorrow, weights=None):
    p = self.unpack(theta)
    s1, s2 = state[:, 0], state[:, 1]
    EX, EY = self.expect(tomorrow[..., 0], weights), self.expect(tomorrow[..., 1], weights)
    x_eq = today[:, 0] - p["beta"] * EX - s1 - 0.5 * s2
    y_eq = today[:, 1] - p["beta"] * EY - p["kappa"] * today[:, 0] - s2
    return tf.stack([x_eq, y_eq], axis=1)

  def slopes(self, theta):
    """`[batch, n_state, n_pol]`: d policy / d state."""
    p = self.unpack(theta)
    d1, d2 = 1 - p["beta"] * p["rho1"], 1 - p["beta"] * p["rho2"]
    a1, a2 = 1 / d1, 0.5 / d2
    b1, b2 = p["kappa"] * a1 / d1, (p["kappa"] * a2 + 1) / d2
    return tf.stack([tf.stack([a1, b1], 1), tf.stack([a2, b2], 1)], axis=1)

  def closed_form(self, state, theta):
    return tf.einsum("bs,bsp->bp", state, tf.cast(self.slopes(theta), state.dtype))

  def state_space(self, theta):
    p = self.unpack(theta)
    zero = tf.zeros_like(p["rho1"])
    return {"transition": tf.linalg.diag(tf.stack([p["rho1"], p["rho2"]], 1)),
            "innovation_std": tf.stack([p["sigma1"], p["sigma2"]], 1),
            "loadings": tf.transpose(self.slopes(theta), [0, 2, 1]),
            "initial_std": self.ergodic_std(theta) + zero[:, None]}


@pytest.fixture(scope="module")
def toy():
  return TwoStates()


@pytest.fixture()
def registered(monkeypatch):
  """The toy registered for the code that looks economies up by name (training, export)."""
  monkeypatch.setitem(economies.ECONOMIES, TwoStates.name, TwoStates)
  return economies.get(TwoStates.name)


def points(toy, b=64, mc=6):
  theta = toy.draw_theta(b, SEED)
  return theta, toy.draw_state(theta, SEED), toy.draw_shocks(mc, b, SEED)


def test_shapes_draws_and_the_closed_form(toy):
  theta, state, eps = points(toy)
  assert state.shape == (64, 2) and eps.shape == (6, 64, 2)
  np.testing.assert_array_equal(eps[:3].numpy(), -eps[3:].numpy())
  assert toy.draw_shocks(6, 64, SEED, stratified=True).shape == (6, 64, 2)
  assert toy.step(state, theta, eps, None).shape == (6, 64, 2)
  # The two states are drawn independently, each with its own ergodic std.
  big = toy.draw_state(toy.draw_theta(20_000, SEED), SEED).numpy()
  assert abs(np.corrcoef(big.T)[0, 1]) < 0.05
  closed = lambda s, t: toy.closed_form(s, t)
  today, tomorrow = toy.policies(closed, state, theta, eps)
  assert today.shape == (64, 2) and tomorrow.shape == (6, 64, 2)
  res = toy.residuals(closed, state, theta, eps) / toy.residual_scale(theta)[:, None]
  assert np.abs(res.numpy()).max() < 1e-5
  # A policy wrong along the second state only shows in the residuals.
  wrong = lambda s, t: closed(s, t) + 0.05 * s[:, 1:2]
  bad = toy.residuals(wrong, state, theta, eps) / toy.residual_scale(theta)[:, None]
  assert np.abs(bad.numpy()).max() > 1e-3


@pytest.mark.parametrize("normalization", ["ergodic", "ergodic_slope", "ergodic_logslope", "kmr"])
def test_every_normalization_takes_two_states(toy, normalization):
  policy = ExtendedPolicy.create(toy, normalization, width=16, depth=2)
  assert policy.net.input_shape == (None, 2 + toy.n_params)
  per_policy = 3 if normalization.endswith("slope") else 1
  assert policy.net.output_shape == (None, per_policy * 2)
  theta, state, _ = points(toy)
  out = policy(state, theta)
  assert out.shape == (64, 2) and np.isfinite(out.numpy()).all()
  if normalization.endswith("slope"):
    # With the first layer blind to its inputs the net's outputs are constants, so the policy
    # is level + z1 slope1 + z2 slope2: additive in the two states, each with its own slope.
    first, last = policy.net.layers[1], policy.net.layers[-1]
    first.set_weights([np.zeros_like(w) for w in first.get_weights()])
    bias = np.random.default_rng(0).uniform(0.5, 1.5, last.get_weights()[1].shape)
    last.set_weights([last.get_weights()[0], bias.astype(np.float32)])
    f = lambda s1, s2: policy(tf.stack([s1, s2], 1), theta).numpy()
    zero = tf.zeros([64])
    a, b = state[:, 0], state[:, 1]
    np.testing.assert_allclose(f(a, b) - f(zero, zero),
                               (f(a, zero) - f(zero, zero)) + (f(zero, b) - f(zero, zero)),
                               rtol=1e-4, atol=1e-7)
    assert not np.allclose(f(a, zero), f(zero, zero)) and not np.allclose(f(zero, b),
                                                                          f(zero, zero))


def test_response_signs_must_have_one_row_per_state(toy):
  one_row = type("OneRow", (TwoStates,), {"response_signs": ((1.0, 1.0),)})()
  with pytest.raises(UserError, match=r"\[n_state\]\[n_policies\]"):
    ExtendedPolicy.create(one_row, "ergodic_logslope")


@pytest.mark.parametrize("regime,options", [
    ("fresh", {}), ("cached", {"pool": 128}), ("internal", {"internal": 2}),
    ("stepping", {"internal": 2, "num_steps": 3, "redraw_every": 2})])
@pytest.mark.parametrize("weighting", ["none", "ergodic", "newton"])
def test_regimes_and_weightings_run_with_two_states(toy, regime, options, weighting):
  model = regimes.build(regime, ExtendedPolicy.create(toy, "ergodic_slope", width=16, depth=2),
                        batch=32, mc=4, weighting=weighting, stratified=True, **options)
  model.compile(optimizer="adam", jit_compile=False)
  for step in range(3):
    seeds = model.step_seeds(step, 4)
    theta, state = model.points(tf.constant(step, tf.int64), seeds[:3])
    assert theta.shape == (32, toy.n_params) and state.shape == (32, 2)
    assert model.shocks(seeds[3])[0].shape == (4, 32, 2)
    out = model.train_step(None)
    assert np.isfinite(float(out["loss"]))


def test_one_state_assumptions_are_refused_by_name(toy):
  policy = ExtendedPolicy.create(toy, "ergodic", width=8, depth=1)
  proportional = type("Prop", (TwoStates,), {"error_shape": "proportional"})()
  with pytest.raises(UserError, match="proportional"):
    regimes.build("fresh", ExtendedPolicy.create(proportional, "ergodic", width=8, depth=1),
                  weighting="newton")
  with pytest.raises(UserError, match="relative"):
    regimes.build("fresh", policy, weighting="relative")
  with pytest.raises(UserError, match="one-dimensional"):
    time_iteration.solve(toy, toy.calibration[None])


def test_the_closed_form_scores_zero_on_ergodic_draws_of_both_states(toy):
  """With several states the metric's states are ergodic draws of the reference: the closed
  form itself, called as a network, is off by float32 round-off only."""
  report = accuracy.evaluate(toy, toy.closed_form, n_theta=5)
  for name in toy.policy_names:
    assert report["errors_pct"][name]["max"] < 1e-3
    assert report["estimated_error"][name]["max"] < 1e-2
  # At the steady state the policies are zero: no relative error, and the report stays JSON.
  assert [report["calibration"][n]["rel_error_pct"] for n in toy.policy_names] == [None, None]
  json.dumps(accuracy.summary(report), allow_nan=False)
  assert "| n/a |" in accuracy.markdown(report)


def closed_form_error(economy, policy):
  """Root mean square error against the closed form, in residual scale, on fixed points."""
  theta = economy.draw_theta(2000, tf.constant([1, 2], tf.int32))
  state = economy.draw_state(theta, tf.constant([3, 4], tf.int32))
  error = (policy(state, theta) - economy.closed_form(state, theta))
  return float(tf.sqrt(tf.reduce_mean(tf.square(error / economy.residual_scale(theta)[:, None]))))


def test_a_short_run_learns_both_states(registered):
  options = training.TrainOptions(economy=registered.name, regime="fresh", iterations=400,
                                  batch=256, mc=2, normalization="ergodic_slope",
                                  weighting="newton", width=32, depth=2, seed=1)
  model = training.build_regime(options)
  before = closed_form_error(registered, model.policy)
  probe_before = model.probe_loss()
  training.fit(model, options, verbose=False)
  after = closed_form_error(registered, model.policy)
  assert model.probe_loss() < 0.1 * probe_before
  assert after < 0.2 * before, (before, after)


def test_export_round_trip_feeds_one_input_per_state(registered, tmp_path):
  policy = ExtendedPolicy.create(registered, "ergodic_slope", width=8, depth=2, seed=3)
  path = str(tmp_path / "model")
  export.export(policy, path, {"command": "test"})
  served = tf.saved_model.load(path).signatures["serving_default"]
  names = sorted(served.structured_input_signature[1])
  assert names == sorted(registered.state_names + registered.param_names)
  theta, state, _ = points(registered)
  loaded = export.LoadedPolicy(path)
  np.testing.assert_allclose(loaded(state, theta).numpy(), policy(state, theta).numpy(),
                             rtol=1e-6, atol=1e-8)
  in_box = tf.saved_model.load(path).signatures["in_box"]
  feeds = {n: c for n, c in zip(registered.state_names + registered.param_names,
                                tf.unstack(tf.concat([state, theta], 1), axis=1))}
  assert in_box(**feeds)["in_box"].numpy().all()
  feeds["s2"] = tf.tensor_scatter_nd_update(feeds["s2"], [[0]], [np.nan])
  assert not in_box(**feeds)["in_box"].numpy()[0]


def test_simulation_paths_and_responses_have_a_column_per_state(toy):
  closed = lambda s, t: toy.closed_form(s, t)
  theta = toy.calibration.astype(np.float32)
  paths = simulation.state_paths(toy, theta, periods=30, chains=4)
  assert paths.shape == (30, 4, 2)
  table = simulation.simulate(toy, closed, theta, periods=30)
  assert {"s1", "s2", "X_nn", "Y_exact"} <= set(table)
  np.testing.assert_allclose(table["X_nn"], table["X_exact"], rtol=1e-6)
  irf = simulation.impulse_response(toy, closed, theta, horizon=5, shock=1)
  assert irf["s1"].max() == 0 and irf["s2"][0] > 0        # the second shock moves s2 only
  moments = simulation.moments(toy, closed, theta, chains=50, periods=50)
  assert "std_s2" in moments["network"] and moments["analytical"] is None


def test_kalman_and_particle_filter_take_two_states(toy):
  closed = particle_filter.closed_form_policy(toy)
  theta = toy.calibration.astype(np.float32)
  data = data_lib.simulate(toy, closed, theta, periods=40, observe_state=True, seed=2)
  assert data.names == ("X", "Y", "s1", "s2") and data.y.shape == (40, 4)
  exact = float(kalman.log_likelihood(toy, data, theta[None].astype(np.float64))[0])
  pf = particle_filter.log_likelihood(toy, closed, data, theta[None], n_particles=4000)[0]
  # Observing both states pins the particles: the filter's error is small against the
  # likelihood's size (~ +400 here).
  assert abs(pf - exact) < 3.0, (pf, exact)


def test_distill_targets_are_the_closed_form_at_both_states(toy):
  model = regimes.build("distill", ExtendedPolicy.create(toy, "ergodic", width=8, depth=1),
                        batch=2000, thetas=20)
  *points, net_scales = model.examples(model.step_seeds(1, 4))
  theta, state, target, scale = (t.numpy() for t in points)
  for held, exact in zip(net_scales, toy.scales(tf.constant(theta))):   # the network's, per row
    np.testing.assert_allclose(held.numpy(), exact.numpy(), rtol=1e-6)
  assert state.shape == (2000, 2) and target.shape == (2000, 2)
  exact = toy.closed_form(tf.constant(state), tf.constant(theta)).numpy()
  # In the metric's units (float32 points and targets, each rounded once).
  np.testing.assert_allclose(100 * (target - exact) / scale, 0.0, atol=1e-3)
  z = state / toy.ergodic_std(tf.constant(theta)).numpy()
  assert np.abs(z).max() <= regimes.DISTILL_SPAN * (1 + 1e-6)
  assert (np.abs(z).max(axis=0) > 0.9 * regimes.DISTILL_SPAN).all()   # each state spans it
  assert abs(np.corrcoef(z.T)[0, 1]) < 0.1                             # drawn independently
  assert np.isfinite(scale).all() and (scale > 0).all()
