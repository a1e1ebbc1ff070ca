"""hank_zlb's training step against the number of households L: time and peak memory.

  python -m benchmarks.hank_agents [--agents=25,50,100] [--steps=300]

For each L, one fresh process builds the shipped recipe's regime (`TrainOptions.for_economy`:
fresh, batch 64, mc 8 unbiased, SOAP) and runs one compiled call of 100 steps to trace and
compile, then `--steps` more, timed; it reports seconds per step and its peak resident memory
(`ru_maxrss`, the compile's included). A figure to read, not a test: compare numbers only from
the same, equally idle machine.
"""

import json
import subprocess
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("agents", ["25", "50", "100"], "Numbers of households.")
flags.DEFINE_integer("steps", 300, "Timed gradient steps (after 100 to compile).", lower_bound=100)
flags.DEFINE_string("one", "", "Internal: measure this L in this process.")


def measure(agents, steps):
  import resource
  from nk_keras import training
  options = lambda n: training.TrainOptions.for_economy(
      "hank_zlb", agents=agents, iterations=n, steps_per_execution=100)
  model = training.build_regime(options(100 + steps))
  start = time.perf_counter()
  training.fit(model, options(100), verbose=False)
  compiled = time.perf_counter() - start
  start = time.perf_counter()
  training.fit(model, options(steps // 100 * 100), verbose=False)
  seconds = time.perf_counter() - start
  steps = steps // 100 * 100
  return {"agents": agents, "first_call_s": compiled, "s_per_step": seconds / steps,
          "steps_per_s": steps / seconds,
          "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv):
  del argv
  if FLAGS.one:
    print(json.dumps(measure(int(FLAGS.one), FLAGS.steps)), flush=True)
    return
  rows = []
  for agents in FLAGS.agents:
    out = subprocess.run([sys.executable, "-m", "benchmarks.hank_agents", f"--one={agents}",
                          f"--steps={FLAGS.steps}"], capture_output=True, text=True, check=True)
    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
  print("| households L | s / step | steps / s | first call (trace, compile, 100 steps) s | "
        "peak RSS MiB |\n|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['agents']} | {r['s_per_step']:.3f} | {r['steps_per_s']:.1f} | "
          f"{r['first_call_s']:.0f} | {r['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
  app.run(main)
