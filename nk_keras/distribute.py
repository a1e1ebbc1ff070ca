"""TensorFlow's distribution engine for training: a strategy by name, the CPU split into logical
devices, and who writes files.

`default` is no strategy at all (the single-device path, numerically unchanged); `mirrored` is
`tf.distribute.MirroredStrategy` over all local GPUs, or over the logical CPU devices when there
is no GPU; `multi_worker` is `tf.distribute.MultiWorkerMirroredStrategy` over the workers that
`TF_CONFIG` lists. How a regime trains under a strategy is in `nk_keras/regimes.py`.
"""

import json
import os

import tensorflow as tf

from nk_keras.errors import UserError
from nk_keras.train_options import STRATEGIES


class WorkerFailure(RuntimeError):
  """Another worker died or stopped answering: the run cannot go on."""


def split_cpu(n):
  """Splits the physical CPU into `n` logical devices, so `mirrored` has `n` replicas without
  GPUs. Must run before TF initialises its devices (TF refuses afterwards)."""
  if n < 1:
    raise UserError(f"cpu_devices must be >= 1, got {n}")
  if n == 1:
    return
  cpu = tf.config.list_physical_devices("CPU")[0]
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
  except RuntimeError as e:
    # Our own ordering, not the user's input: a bug if it happens.
    raise RuntimeError(f"cannot split the CPU into {n} devices once TensorFlow has initialised its "
                     f"devices ({e}); split it first thing in the process") from None


def cluster_spec():
  """`(cluster, task)` from `TF_CONFIG`, checked; a ValueError says what is missing."""
  raw = os.environ.get("TF_CONFIG")
  if not raw:
    raise UserError("--strategy=multi_worker needs TF_CONFIG (see docs/performance.md, "
                    "'Training on several devices')")
  try:
    config = json.loads(raw)
  except ValueError:
    raise UserError(f"TF_CONFIG is not JSON: {raw[:200]!r}") from None
  cluster, task = config.get("cluster"), config.get("task")
  if not isinstance(cluster, dict) or not cluster.get("worker"):
    raise UserError("TF_CONFIG has no cluster.worker list")
  if not isinstance(task, dict) or task.get("type") not in cluster or not (
      0 <= task.get("index", -1) < len(cluster[task["type"]])):
    raise UserError(f"TF_CONFIG's task {task!r} is not one of its cluster's tasks")
  return cluster, task


def create(name, timeout_s=300):
  """The strategy called `name`; `timeout_s` bounds every multi-worker collective, so a dead
  peer ends the run with an error instead of a hang."""
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])
  if name == "multi_worker":
    cluster_spec()  # a clear error for a missing or malformed TF_CONFIG, before TF's own
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_s)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
  raise UserError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")


def is_writer(strategy):
  """Whether this process writes checkpoints, history and exports: every single-process
  strategy, and the chief of a multi-worker one (worker 0 unless TF_CONFIG names a chief)."""
  return strategy.extended.should_checkpoint


def worker_id(strategy):
  """`task_type-index` of this process in a multi-worker cluster, None otherwise."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or resolver.task_type is None:
    return None
  return f"{resolver.task_type}-{resolver.task_id}"


def fail_on_lost_worker(fn, *args, **kwargs):
  """`fn(*args, **kwargs)`, with the errors a lost peer causes in a collective turned into one
  `WorkerFailure`."""
  try:
    return fn(*args, **kwargs)
  except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
          tf.errors.CancelledError, tf.errors.AbortedError) as e:
    # TF's own text is a graph-execution dump; its type says which way the collective failed.
    raise WorkerFailure(f"another worker died or stopped answering ({type(e).__name__} in a "
                        f"collective); see that worker's log") from None
