"""hank_zlb's continuum in the sequence space (sequence-jacobian, the `hank` extra): the
first-order responses the network economy approaches as L grows (its calibration of `beta`
against ours: tests/test_hank.py, beside the steady state it checks)."""

import numpy as np
import pytest

from nk_keras.economies.rank_zlb import RankZLB

hank_continuum = pytest.importorskip("nk_keras.economies.hank_continuum")

CALIBRATION = dict(zip(RankZLB.param_names, RankZLB.calibration))


def test_the_responses_follow_the_rule_and_fade():
  """A negative preference innovation: hours and inflation fall, the rate moves as the rule
  says (in logs, exactly at first order), and everything returns to the steady state."""
  irf = hank_continuum.impulse_response(CALIBRATION, shock=-1.0, horizon=hank_continuum.HORIZON)
  N, Pi, R = irf["N"], irf["Pi"], irf["R"]
  assert N[0] < 0 and Pi[0] < 0
  assert R == pytest.approx(CALIBRATION["theta_pi"] * Pi + CALIBRATION["theta_y"] * N,
                            abs=1e-9)
  assert np.abs(N[-50:]).max() < 1e-6 * np.abs(N).max()
  twice = hank_continuum.impulse_response(CALIBRATION, shock=-2.0, horizon=10)
  assert twice["N"] == pytest.approx(2 * N[:10])


def test_the_evaluation_sets_the_networks_responses_beside_the_continuums():
  """`HankZLB.continuum_responses` with a policy of known response: the continuum's
  steady-state savings, and inflation 0.1 zeta (so -0.1 sigma_zeta per std of a negative
  innovation on impact, whatever the start); the collapse has no continuum of its own."""
  import tensorflow as tf
  from nk_keras import economies
  economy = economies.get("hank_zlb", agents=3)

  def policy(state, theta):
    return tf.concat([0.1 * state[:, :1], economy.policy_guess(state, theta)[:, 1:]], axis=1)
  summary, raw = economy.continuum_responses(policy, horizon=6, draws=100)
  assert summary["Pi"]["peak_period"] == 0
  assert summary["Pi"]["network_at_peak"] == pytest.approx(-0.1 * CALIBRATION["sigma_zeta"],
                                                           rel=1e-4)
  expected = hank_continuum.impulse_response(CALIBRATION, -1.0, 6)
  assert raw["N"]["continuum"] == pytest.approx(expected["N"])
  assert summary["N"]["continuum_peak"] == pytest.approx(expected["N"][0])
  collapse = economies.get("hank_zlb_collapse", agents=3)
  assert "skipped" in collapse.continuum_responses(collapse.policy_guess)[0]
