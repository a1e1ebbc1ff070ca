"""Section 2: achieved matmul FLOP/s of a gradient step against the measured matmul peak."""

import math
import statistics
import time

import numpy as np

from benchmarks.speed.common import PAPER, table
from benchmarks.speed.regimes import time_regimes


def matmul_gflops(m, k, n, chain, repeats):
  """GFLOP/s of `[m, k] @ [k, n]` in one XLA-compiled call doing `chain` dependent products
  (so per-call dispatch does not count); median of `repeats` calls after a warm-up."""
  import tensorflow as tf
  rng = np.random.default_rng(0)
  x = tf.constant(rng.standard_normal((m, k)), tf.float32)
  if chain > 1:
    # Orthogonal: x keeps its norm over the chain (no overflow, no slow denormals).
    w = tf.constant(np.linalg.qr(rng.standard_normal((k, n)))[0], tf.float32)
  else:
    w = tf.constant(rng.standard_normal((k, n)) / math.sqrt(k), tf.float32)

  @tf.function(jit_compile=True)
  def products(x, w, chain):
    # A While loop: XLA cannot reassociate the chain into cheaper (w @ w) products.
    for _ in tf.range(chain):
      x = tf.matmul(x, w)
    return tf.reduce_sum(x)                             # a scalar result: no large copy out

  chain_t = tf.constant(chain)
  products(x, w, chain_t).numpy()
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    products(x, w, chain_t).numpy()
    seconds.append(time.perf_counter() - start)
  return 2.0 * m * k * n * chain / statistics.median(seconds) / 1e9


def run(s, out):
  rows = out.get("regimes", {}).get("rows")
  if rows is None:                                      # section 1 not run: time fresh here
    rows = time_regimes(s, ["fresh", "fresh_ergodic"])
  points = PAPER["batch"] * (1 + PAPER["mc"])
  width, size = PAPER["width"], s["matmul_size"]
  net_peak = matmul_gflops(points, width, width, s["chain"], max(3, s["repeats"]))
  large_peak = matmul_gflops(size, size, size, 1, max(3, s["repeats"]))
  achieved = {name: r["gflop_per_step"] * r["steps_per_s"]["median"] for name, r in rows.items()}
  out["flops"] = {
      "matmul_peak_gflops": {f"network_{points}x{width}@{width}x{width}": net_peak,
                             f"large_{size}x{size}@{size}x{size}": large_peak},
      "rows": {name: {"gflop_per_step": r["gflop_per_step"],
                      "steps_per_s": r["steps_per_s"]["median"],
                      "achieved_gflops": achieved[name],
                      "fraction_of_large_peak": achieved[name] / large_peak,
                      "fraction_of_network_peak": achieved[name] / net_peak}
               for name, r in rows.items()}}
  print(f"\n2. Achieved network-matmul FLOP/s of a gradient step (batch {PAPER['batch']}, "
        f"mc {PAPER['mc']}, {PAPER['depth']} x {width})")
  table(["regime", "MFLOP/step", "steps/s", "GFLOP/s", "of large peak", "of network peak"],
        [[name, f"{r['gflop_per_step'] * 1e3:.1f}", f"{r['steps_per_s']:,.0f}",
          f"{r['achieved_gflops']:.1f}", f"{100 * r['fraction_of_large_peak']:.0f} %",
          f"{100 * r['fraction_of_network_peak']:.0f} %"]
         for name, r in out["flops"]["rows"].items()])
  print(f"matmul peak (XLA, this run): {net_peak:.1f} GFLOP/s network-shaped "
        f"({points} x {width} @ {width} x {width}), {large_peak:.1f} GFLOP/s large "
        f"({size}^2 @ {size}^2)")
  share = out["flops"]["rows"]["fresh"]["fraction_of_network_peak"]
  print(f"limits: at the network-shaped peak the matmuls would take {100 * share:.0f} % of a "
        f"fresh step; the rest is elementwise work (activations, residual and Newton algebra, "
        f"AdamW), per-step overhead and matrices too small to use the cores as the large "
        f"matmul does.")

