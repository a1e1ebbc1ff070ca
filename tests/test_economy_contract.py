"""The contract every registered economy honours: shapes, residuals at its reference, export
round trip, a short training run learns. New economies join by registering in ECONOMIES."""

import numpy as np
import pytest
import tensorflow as tf

from nk_keras import accuracy, economies, export, regimes, training
from nk_keras.network import ExtendedPolicy
from nk_keras.reference import time_iteration

NAMES = sorted(economies.ECONOMIES)
SEED = tf.constant([5, 6], tf.int32)


@pytest.fixture(scope="module", params=NAMES)
def economy(request):
  return economies.get(request.param)


def test_shapes_and_names(economy):
  P, n_pol, b, mc = economy.n_params, len(economy.policy_names), 7, 6
  S, K = economy.n_state, economy.n_shock
  theta = economy.draw_theta(b, SEED)
  state = economy.draw_state(theta, SEED)
  assert theta.shape == (b, P) and state.shape == (b, S)
  assert economy.ergodic_std(theta).shape == (b, S)
  assert economy.residual_scale(theta).shape == (b,)
  for stratified in (False, True):
    eps = economy.draw_shocks(mc, b, SEED, stratified)
    assert eps.shape == (mc, b, K)
  assert economy.step(state, theta, eps).shape == (mc, b, S)
  assert economy.step(state, theta, eps[0]).shape == (b, S)
  assert len(economy.residual_names) == n_pol and len(economy.calibration) == P
  policy = ExtendedPolicy.create(economy)
  today, tomorrow = economy.policies(policy, state, theta, eps)
  assert today.shape == (b, n_pol) and tomorrow.shape == (mc, b, n_pol)
  assert economy.residuals(policy, state, theta, eps).shape == (b, n_pol)
  assert economy.policy_scale(theta).shape == (b, n_pol)
  outputs = economy.outputs(state, theta, today)
  assert tuple(outputs) == economy.output_names
  np.testing.assert_allclose(economy.policies_from_outputs(outputs).numpy(), today.numpy(),
                             atol=1e-6)
  # Figures label every parameter and policy, and nothing the economy does not have.
  named = set(economy.param_names + economy.state_names + economy.output_names)
  assert set(economy.param_names + economy.policy_names) <= set(economy.labels) <= named


def test_training_draws_stay_in_the_box_and_the_domain(economy):
  theta = economy.draw_theta(5000, SEED)
  assert not economy.outside_box(theta.numpy())
  assert bool(tf.reduce_all(economy.in_domain(theta)))


def reference_residuals(economy, reference, k, bump=None):
  """Residuals `[n, L, n_res]` in ergodic std of the reference at states `k` ergodic std, with
  quadrature expectations (float64); `bump` `[n_pol]` multiplies today's policies."""
  theta = reference.theta
  std = economy.ergodic_std(tf.constant(theta)).numpy()                   # [n, 1]
  n, L = len(theta), len(k)
  state = (std[:, None, :] * np.asarray(k)[None, :, None]).reshape(n * L, 1)
  theta_b = np.repeat(theta, L, axis=0)
  x, w = time_iteration.trapezoid_normal(200)
  eps = np.broadcast_to(x[:, None, None], (len(x), n * L, 1))
  nxt = economy.step(tf.constant(state), tf.constant(theta_b), tf.constant(eps)).numpy()
  today = reference.policies(state.reshape(n, L, 1)).reshape(n * L, -1)
  tomorrow = np.stack([reference.policies(nxt[j].reshape(n, L, 1)).reshape(n * L, -1)
                       for j in range(len(x))])
  if bump is not None:
    today = today + bump * np.repeat(reference.scale(), L, axis=0)
  res = economy.equilibrium(tf.constant(state), tf.constant(theta_b), tf.constant(eps),
                            tf.constant(today), tf.constant(tomorrow), tf.constant(w))
  return res.numpy().reshape(n, L, -1) / std[:, None, :]


def test_reference_solves_the_equilibrium_and_an_error_shows(economy):
  theta = accuracy.draw_box(economy, 3, seed=1).numpy().astype(np.float64)
  reference = economy.reference(theta)
  assert reference.valid.all()
  k = np.linspace(-2, 2, 5)
  exact = reference_residuals(economy, reference, k)
  # Float64 closed form: round-off (4e-16 measured); time iteration: its own quadrature's error
  # at the ZLB kink, seen through 200 nodes instead of its 80 (1.0e-4 measured, at -2 std).
  assert np.abs(exact).max() < 3e-4, np.abs(exact).max()
  for j in range(len(economy.policy_names)):
    bump = np.zeros(len(economy.policy_names))
    bump[j] = 0.02                                  # 2 % of the policy's own scale
    assert np.abs(reference_residuals(economy, reference, k, bump)).max() > 5 * np.abs(exact).max()


def test_export_round_trip_and_in_box(economy, tmp_path):
  policy = ExtendedPolicy.create(economy, seed=3)
  path = str(tmp_path / "model")
  export.export(policy, path, {"command": "test"})
  loaded = export.LoadedPolicy(path)
  theta = economy.draw_theta(200, SEED)
  state = economy.draw_state(theta, SEED)
  # Served outputs are float32 levels for rank_zlb (Pi ~ 1.005): back in logs that is ~1.2e-7.
  np.testing.assert_allclose(loaded(state, theta).numpy(), policy(state, theta).numpy(),
                             rtol=1e-5, atol=3e-7)
  in_box = tf.saved_model.load(path).signatures["in_box"]
  feeds = lambda th: {n: tf.constant(c, tf.float32) for n, c in zip(
      economy.state_names + economy.param_names,
      list(state.numpy().T) + list(np.asarray(th).T))}
  assert in_box(**feeds(theta.numpy()))["in_box"].numpy().all()
  outside = theta.numpy().copy()
  outside[:, 0] = economy.box_high[0] + 1
  assert not in_box(**feeds(outside))["in_box"].numpy().any()


def test_unsupported_options_are_refused_by_name(economy):
  limited = type("Limited", (type(economy),), {"normalizations": ("ergodic",),
                                                "weightings": ("ergodic",)})()
  with pytest.raises(ValueError, match="kmr"):
    ExtendedPolicy.create(limited, "kmr")
  with pytest.raises(ValueError, match="relative"):
    regimes.build("fresh", ExtendedPolicy.create(limited, "ergodic"), weighting="relative")
  with pytest.raises(ValueError, match="Nope"):
    regimes.build("fresh", ExtendedPolicy.create(economy), loss_weights={"Nope": 1.0})


def test_a_short_run_learns(economy, monkeypatch):
  # Before and after are measured on the same thetas (seed 4): the reference is solved once for
  # both (rank_zlb's time iteration is most of an evaluation's time; the solver is deterministic).
  solved, solve = {}, economy.reference

  def reference(theta, progress=False):
    theta = np.asarray(theta)
    key = (theta.shape, theta.dtype.str, theta.tobytes())
    if key not in solved:
      solved[key] = solve(theta, progress)
    return solved[key]

  monkeypatch.setattr(economy, "reference", reference)
  options = training.TrainOptions(economy=economy.name, regime="fresh", iterations=400,
                                  batch=256, mc=4, stratified=True, unbiased=True, seed=2)
  model = training.build_regime(options)
  before = accuracy.evaluate(economy, model.policy, n_theta=12, seed=4)["errors_pct"]
  training.fit(model, options, verbose=False)
  after = accuracy.evaluate(economy, model.policy, n_theta=12, seed=4)["errors_pct"]
  for name in economy.policy_names:
    assert after[name]["mean"] < 0.5 * before[name]["mean"], (name, before, after)
