"""Estimation on rank_zlb: KMR's observables, data from the reference solution, bad data files."""

import math

import numpy as np
import pytest

from nk_keras import economies
from nk_keras.estimation import data

ZLB = economies.get("rank_zlb")
THETA = ZLB.calibration.astype(np.float64)


def levels_observables(theta, n, pi, n_before):
  """KMR's eq. 43 from the model in levels (MODEL.md section 8), written independently of
  the economy: hours N, gross inflation Pi, the rule's rate floored at one."""
  f = ZLB.fixed
  p = dict(zip(ZLB.param_names, theta))
  Pibar = math.exp(f["log_Pibar"])
  N, Pi, N_before = math.exp(n), Pibar * math.exp(pi), math.exp(n_before)
  R = max(1.0, Pibar / f["beta"] * (Pi / Pibar) ** p["theta_pi"] * (N / f["Ybar"]) ** p["theta_y"])
  return [400 * (N / N_before - 1), 400 * (Pi - 1), 400 * (R - 1)]


@pytest.mark.parametrize("n, pi, n_before", [(0.01, 0.002, -0.004), (-0.03, -0.006, -0.02)])
def test_observables_are_kmrs_annualised_series(n, pi, n_before):
  names = ZLB.observable_names()
  assert names == ("output_growth", "inflation", "interest_rate")
  got = ZLB.observe(names, np.zeros([1, 1]), THETA[None], np.array([[n, pi]]),
                    (np.zeros([1, 1]), np.array([[n_before, 0.0]]))).numpy()[0]
  np.testing.assert_allclose(got, levels_observables(THETA, n, pi, n_before), rtol=1e-12)
  if n < 0:   # a deep recession: the rate is at the floor, exactly zero in annualised percent
    assert got[2] == 0.0
  with pytest.raises(ValueError, match="last period"):
    ZLB.observe(names, np.zeros([1, 1]), THETA[None], np.array([[n, pi]]))


def test_simulated_data_are_the_three_series_of_the_reference_solution():
  """Data from time iteration (not a network): the three clean series are one path, tied by
  the Taylor rule: hours recovered from the rate and inflation (off the ZLB) grow as the
  output-growth series says."""
  reference = ZLB.reference(THETA[None])
  d = data.simulate(ZLB, reference.as_policy(), THETA, periods=60, me_share=0.1, seed=1)
  assert d.names == ("output_growth", "inflation", "interest_rate") and d.y.shape == (60, 3)
  np.testing.assert_allclose(d.me_var, 0.1 * d.clean.var(axis=0))
  growth, inflation, rate = d.clean.T
  p, f = dict(zip(ZLB.param_names, THETA)), ZLB.fixed
  Pi, R = 1 + inflation / 400, 1 + rate / 400
  log_N = (np.log(R) - (f["log_Pibar"] - math.log(f["beta"]))
           - p["theta_pi"] * (np.log(Pi) - f["log_Pibar"])) / p["theta_y"]
  off = (rate[1:] > 0) & (rate[:-1] > 0)
  assert off.sum() > 30 and (rate == 0).any()   # both regimes in the sample
  np.testing.assert_allclose(400 * np.expm1(np.diff(log_N)[off]), growth[1:][off], atol=1e-8)


def write(tmp_path, text):
  p = tmp_path / "d.csv"
  p.write_text(text)
  return str(p)


HEADER = "period,output_growth,inflation,interest_rate\n"
GOOD_ROW = "0,1.5,2.0,3.0\n"


def test_csv_round_trip_with_kmrs_columns(tmp_path):
  d = data.simulate(ZLB, ZLB.reference(THETA[None]).as_policy(), THETA, periods=20, seed=2)
  path = str(tmp_path / "d.csv")
  data.write_csv(path, d)
  assert open(path).readline().strip() == HEADER.strip()
  back = data.read_csv(path, ZLB)
  assert back.names == d.names and "annualised percent" in back.units
  np.testing.assert_allclose(back.y, d.y, rtol=1e-15)


@pytest.mark.parametrize("text, message", [
    ("X,Pi\n" + "1,2\n" * 20, "missing column(s) output_growth, inflation, interest_rate"),
    ("output_growth,inflation\n" + "1,2\n" * 20, "missing column(s) interest_rate"),
    (HEADER + GOOD_ROW * 19 + "19,1.5,two,3.0\n",
     "line 21, column inflation: 'two' is not a number"),
    (HEADER + GOOD_ROW * 19 + "19,1.5,2.0,inf\n", "column interest_rate: inf is not finite"),
    (HEADER + GOOD_ROW * 5, "5 periods; at least 10"),
])
def test_bad_files_are_refused_in_one_line(tmp_path, text, message):
  with pytest.raises(data.DataError) as error:
    data.read_csv(write(tmp_path, text), ZLB)
  assert message in str(error.value) and "\n" not in str(error.value)
