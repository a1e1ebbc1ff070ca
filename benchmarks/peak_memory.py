"""Peak resident memory and wall time of the train app's default command, the whole process.

  python -m benchmarks.peak_memory [--out=/tmp/peak_memory] [-- EXTRA TRAIN FLAGS]

Runs `python -m apps.train --out=OUT` (every default: nk, stepping, 25,000 steps, the accuracy
report at 20,000 thetas, the export) under `/usr/bin/time -v` from the repository root, and
prints its peak RSS (`Maximum resident set size`), wall time, exit status and the mean errors
of the run's report; also, from a sample of the app's VmRSS every 0.5 s, the peak of each
phase: start and training, then the accuracy report and the export (from when the app writes
`run.json`, between the two). A figure to read, not a test: a run takes minutes; compare numbers
only from runs on the same, equally idle machine. Needs GNU time (`/usr/bin/time`).
"""

import json
import os
import re
import subprocess
import sys
import threading
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "/tmp/peak_memory", "The run's --out (replaced).")
flags.DEFINE_float("sample_every", 0.5, "Seconds between VmRSS samples.", lower_bound=0.05)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _vmrss_mib(pid):
  try:
    with open(f"/proc/{pid}/status") as f:
      for line in f:
        if line.startswith("VmRSS:"):
          return int(line.split()[1]) / 1024
  except OSError:
    return None
  return None


def _children(pid):
  try:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
      return [int(p) for p in f.read().split()]
  except OSError:
    return []


def main(argv):
  import shutil
  if not os.path.exists("/usr/bin/time"):
    sys.exit("needs GNU time at /usr/bin/time")
  shutil.rmtree(FLAGS.out, ignore_errors=True)
  command = [sys.executable, "-m", "apps.train", f"--out={FLAGS.out}"] + argv[1:]
  print("command: /usr/bin/time -v " + " ".join(command), flush=True)
  start = time.time()
  proc = subprocess.Popen(["/usr/bin/time", "-v"] + command, cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  samples = []   # (seconds since start, VmRSS MiB) of time's child, the app
  trained = []   # seconds since start when run.json appeared: training done, the report next
  run_json = os.path.join(FLAGS.out, "run.json")

  def sample():
    child = None
    while proc.poll() is None:
      if not trained and os.path.exists(run_json):
        trained.append(time.time() - start)
      child = child or next(iter(_children(proc.pid)), None)
      if child is not None:
        mib = _vmrss_mib(child)
        if mib is not None:
          samples.append((time.time() - start, mib))
      time.sleep(FLAGS.sample_every)

  sampler = threading.Thread(target=sample, daemon=True)
  sampler.start()
  stdout, stderr = proc.communicate()
  wall = time.time() - start
  sampler.join()
  peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
  elapsed = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", stderr)
  status = re.search(r"Exit status: (\d+)", stderr)
  if peak:
    kib = int(peak.group(1))
    print(f"peak RSS (/usr/bin/time -v): {kib / 1024:.0f} MiB ({kib * 1024 / 1e9:.2f} GB)")
  else:
    print("peak RSS: not reported")
  print(f"wall time: {elapsed.group(1) if elapsed else '?'} ({wall:.0f} s)")
  print(f"exit status: {status.group(1) if status else proc.returncode}")
  if samples and trained:
    before = [mib for t, mib in samples if t <= trained[0]]
    after = [mib for t, mib in samples if t > trained[0]]
    if before:
      print(f"sampled peak, start and training (first {trained[0]:.0f} s): {max(before):.0f} MiB")
    if after:
      print(f"sampled peak, accuracy report and export (last {wall - trained[0]:.0f} s): "
            f"{max(after):.0f} MiB")
  report = os.path.join(FLAGS.out, "evaluation.json")
  if os.path.exists(report):
    with open(report) as f:
      errors = json.load(f).get("errors_pct", {})
    print("mean errors (%): " + ", ".join(f"{n} {v['mean']:.4f}" for n, v in errors.items()))
  if os.path.exists(run_json):
    with open(run_json) as f:
      print(f"training wall time (run.json): {json.load(f)['wall_time_s']} s")
  if proc.returncode:
    print(stdout[-2000:], stderr[-4000:], sep="\n")
    sys.exit(proc.returncode)


if __name__ == "__main__":
  app.run(main)
