"""The speed benchmark runs end to end in smoke mode and writes every section's figures.

No speed is asserted: timings depend on the machine and its load; only that each figure was
measured (positive and finite) and the report has its shape.
"""

import json
import math
import os
import pathlib
import sys

import pytest

import background

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTIONS = ("regimes", "flops", "scaling", "time_to_accuracy", "serving")
REGIME_ROWS = ("fresh", "fresh_ergodic", "cached", "internal", "stepping")


def positive(x):
  return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


# Its process starts in the background lane (tests/background.py), beside the tests before it.
SMOKE = background.job("smoke_run", [sys.executable, "-m", "benchmarks.speed", "--smoke",
                                     "--out={out}/r.json"], cwd=ROOT, timeout=900)


@pytest.fixture()
def smoke_run():
  run = SMOKE.result()
  return pathlib.Path(SMOKE.out) / "r.json", run


# Slow (`pytest -m slow`): 4-8 minutes of the 2 cores' time for a script that measures, not a
# behaviour of the library; the suite's default run keeps to the brief's ~12 minutes.
@pytest.mark.slow
def test_smoke_run_writes_every_section(smoke_run):
  out, run = smoke_run
  assert run.returncode == 0, run.stderr[-3000:]
  for title in ("1. Gradient steps/s", "2. Achieved", "3. Scaling", "4. Time to accuracy",
                "5. Served policy"):
    assert title in run.stdout
  results = json.loads(out.read_text())
  assert results["meta"]["smoke"] is True
  for section in SECTIONS:
    assert section in results, section

  rows = results["regimes"]["rows"]
  assert sorted(rows) == sorted(REGIME_ROWS)
  for name, row in rows.items():
    assert all(positive(v) for v in row["steps_per_s"].values()), (name, row)
    assert row["steps_per_s"]["min"] <= row["steps_per_s"]["median"] <= row["steps_per_s"]["max"]
    assert positive(row["gflop_per_step"]), (name, row)
  # The relative weighting adds one forward pass per point: more FLOPs than the plain loss.
  assert rows["fresh"]["gflop_per_step"] > rows["fresh_ergodic"]["gflop_per_step"]

  flops = results["flops"]
  assert len(flops["matmul_peak_gflops"]) == 2
  assert all(positive(v) for v in flops["matmul_peak_gflops"].values())
  assert sorted(flops["rows"]) == sorted(REGIME_ROWS)
  for row in flops["rows"].values():
    for key in ("achieved_gflops", "fraction_of_large_peak", "fraction_of_network_peak"):
      assert positive(row[key]), row

  grid = results["scaling"]["rows"]
  assert grid
  for row in grid:
    for key in ("steps_per_s", "samples_per_s", "points_per_s", "gflops"):
      assert positive(row[key]), row
    assert math.isclose(row["samples_per_s"], row["batch"] * row["steps_per_s"])

  tta = results["time_to_accuracy"]["rows"]
  zlb = "rank_zlb distill (configs/rank_zlb.flags)"
  assert sorted(tta) == ["nk KMR's configuration", "nk stepping", zlb]
  assert tta["nk KMR's configuration"]["options"]["normalization"] == "kmr"
  assert tta[zlb]["options"]["economy"] == "rank_zlb" and tta[zlb]["options"]["regime"] == "distill"
  for name, row in tta.items():
    assert row["steps_run"] > 0 and positive(row["train_s"]) and positive(row["steps_per_s"])
    assert 0 <= row["build_s"] < row["train_s"], row
    assert sorted(row["reached"]) == ["0.1", "0.3", "1", "bar"]
    for hit in row["reached"].values():
      assert isinstance(hit["reached"], bool)
      if hit["reached"]:
        assert positive(hit["train_s"]) and hit["step"] > 0
    final = row["final"]
    assert set(final["mean"]) == set(final["p95"]) and all(map(positive, final["mean"].values()))
    assert ("cal" in final) == (row["economy"] == "nk")
    assert row["trace"] and row["trace"][-1]["step"] == row["steps_run"]

  serving = results["serving"]
  assert positive(serving["saved_model_evals_per_s"])
  assert positive(serving["closed_form_evals_per_s"])
  assert abs(serving["closed_form_check"]["X"] - 0.002992) < 5e-7
  assert abs(serving["closed_form_check"]["Pi"] - 0.008504) < 5e-7
