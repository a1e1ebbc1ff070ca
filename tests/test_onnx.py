"""ONNX export: every shipped model converts, and onnxruntime, in a process where TensorFlow
cannot be imported, gives the SavedModel's outputs to float32 round-off."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from nk_keras import onnx_export
from nk_keras import economies

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = sorted(os.listdir(os.path.join(ROOT, "saved_models")))
POINTS = 2000

# Run with `python -I` (no PYTHONPATH, no user site) with a directory first on its path that
# holds a `tensorflow` package that refuses to load: the only TensorFlow it could import.
SERVE = """
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
  import tensorflow
  raise SystemExit("TensorFlow imported: the check would not be isolated")
except ImportError:
  pass
import numpy as np
import onnxruntime
for name in sys.argv[1:]:
  session = onnxruntime.InferenceSession(name + ".onnx", providers=["CPUExecutionProvider"])
  feeds = dict(np.load(name + "_in.npz"))
  outputs = [o.name for o in session.get_outputs()]
  np.savez(name + "_onnx.npz", **dict(zip(outputs, session.run(None, feeds))))
assert "tensorflow" not in sys.modules, "something imported TensorFlow"
print("served", len(sys.argv) - 1)
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
  """Every shipped model converted, its SavedModel and (in the isolated process) its ONNX graph
  run on the same random in-box points: name -> (inputs, SavedModel outputs, ONNX outputs,
  the ONNX file)."""
  work = tmp_path_factory.mktemp("onnx")
  (work / "tensorflow").mkdir()
  (work / "tensorflow" / "__init__.py").write_text(
      'raise ImportError("no TensorFlow in this process")\n')
  (work / "serve.py").write_text(SERVE)
  expected = {}
  for name in SHIPPED:
    model = os.path.join(ROOT, "saved_models", name)
    onnx_export.convert(model, str(work / f"{name}.onnx"))
    with open(os.path.join(model, "assets", "metadata.json")) as f:
      meta = json.load(f)
    economy = economies.get(meta["economy"], agents=meta.get("agents", 0))
    feeds = onnx_export.check_inputs(economy, POINTS, seed=1)
    np.savez(work / f"{name}_in.npz", **feeds)
    signatures = tf.saved_model.load(model).signatures
    tensors = {k: tf.constant(v) for k, v in feeds.items()}
    expected[name] = (feeds, {k: v.numpy() for signature in ("serving_default", "in_box")
                              for k, v in signatures[signature](**tensors).items()})
  proc = subprocess.run([sys.executable, "-I", "serve.py", *SHIPPED], cwd=work,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0 and f"served {len(SHIPPED)}" in proc.stdout, proc.stderr[-3000:]
  return {name: (*expected[name], dict(np.load(work / f"{name}_onnx.npz")), work / f"{name}.onnx")
          for name in SHIPPED}


def test_every_economy_ships_a_model():
  assert {"nk_stepping", "rank_zlb"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_onnxruntime_without_tensorflow_reproduces_the_saved_model(served, name):
  feeds, want, got, _ = served[name]
  assert sorted(got) == sorted(want)
  # The in_box signature as one more output: the same verdict at every point, both kinds met.
  inside = want.pop("in_box")
  assert got["in_box"].dtype == bool and np.array_equal(got["in_box"], inside)
  # (rank_zlb_inertia's existence rule keeps under half of its box)
  assert 0.2 < inside.mean() < 1.0, inside.mean()
  for output, w in want.items():
    g = got[output]
    # [POINTS], or [POINTS, households] for an agent set's outputs
    assert g.dtype == np.float32 and g.shape == w.shape and w.shape[0] == POINTS, (
        output, g.dtype, g.shape)
    # Float32 round-off: about 30 ulps of each value or of the output's largest value.
    scale = np.max(np.abs(w))
    np.testing.assert_array_less(np.abs(g.astype(np.float64) - w),
                                 4e-6 * np.abs(w) + 4e-6 * scale + 1e-30, err_msg=output)
  if "R" in want:
    # The ZLB's max is in the graph: the check's points hit both sides of the kink.
    floor = want["R"] <= 1.0 + 1e-7
    assert 0.02 < floor.mean() < 0.98, floor.mean()


def test_the_graph_keeps_the_contract(served):
  import onnx
  proto = onnx.load(str(served["rank_zlb"][3]))
  for value in list(proto.graph.input) + list(proto.graph.output):
    tensor = value.type.tensor_type
    want = onnx.TensorProto.BOOL if value.name == "in_box" else onnx.TensorProto.FLOAT
    assert tensor.elem_type == want, value.name
    assert [d.dim_param for d in tensor.shape.dim] == ["batch"], value.name
  assert sorted(v.name for v in proto.graph.output) == ["N", "Pi", "R", "in_box"]
  meta = json.loads({p.key: p.value for p in proto.metadata_props}["nk_keras"])
  assert meta["economy"] == "rank_zlb" and meta["signature"]["outputs"] == ["N", "Pi", "R"]


def test_the_export_app_writes_onnx_and_refuses_bad_input(tmp_path):
  model = os.path.join(ROOT, "saved_models", "nk_stepping")
  out = tmp_path / "nk.onnx"
  cases = {"ok": ["--format=onnx", f"--model={model}", f"--out={out}"],
           "no model": ["--format=onnx", f"--out={tmp_path / 'x.onnx'}"],
           "not a model": ["--format=onnx", f"--model={tmp_path}", f"--out={tmp_path / 'y.onnx'}"]}
  # In parallel: each process spends most of its time importing TensorFlow.
  procs = {k: subprocess.Popen([sys.executable, "-m", "apps.export", *args], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for k, args in cases.items()}
  results = {k: (p.wait(timeout=300), *p.communicate()) for k, p in procs.items()}
  rc, stdout, stderr = results["ok"]
  assert rc == 0 and out.exists() and "ONNX model at" in stdout, stderr[-2000:]
  for k, needle in (("no model", "--format=onnx takes --model"),
                    ("not a model", "not a SavedModel")):
    rc, _, stderr = results[k]
    assert rc == 2 and len(stderr.splitlines()) == 1 and needle in stderr, (k, stderr)


# `python -m apps.export` in a process where none of the onnx extra's packages can be imported
# (None in sys.modules fails their import).
WITHOUT_THE_EXTRA = """
import runpy, sys
sys.modules.update(dict.fromkeys(["tf2onnx", "onnx", "onnxruntime"]))
runpy.run_module("apps.export", run_name="__main__", alter_sys=True)
"""


def test_without_the_onnx_extra_the_export_app_says_what_to_install(tmp_path):
  out = tmp_path / "nk.onnx"
  proc = subprocess.run([sys.executable, "-c", WITHOUT_THE_EXTRA, "--format=onnx",
                         f"--model={os.path.join(ROOT, 'saved_models', 'nk_stepping')}",
                         f"--out={out}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2 and not out.exists(), proc.stderr[-2000:]
  lines = proc.stderr.splitlines()
  assert len(lines) == 1 and "pip install 'nk-keras[onnx]'" in lines[0], proc.stderr[-2000:]
