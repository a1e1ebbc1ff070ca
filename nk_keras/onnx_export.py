"""ONNX export of a policy SavedModel, for serving where TensorFlow does not run (onnxruntime in
Python, C++ or the browser, Julia's ONNXRunTime.jl, MATLAB).

The graph keeps the contract of `serving_default` (nk_keras/export.py): one float32 `[batch]`
input per name in `state_names + param_names` and one float32 `[batch]` output per name in
`output_names`, `batch` one symbolic dimension shared by all; and it adds the SavedModel's
second signature as one more output, bool `[batch]` `in_box` (false outside the box or where
the economy has no equilibrium: such a point's policies mean nothing). The SavedModel's
`assets/metadata.json` travels in the model's metadata (`metadata_props["nk_keras"]`). The
converter is tf2onnx (BUILD_NOTES.md, "ONNX"); every conversion is checked against the SavedModel
with onnxruntime before it is written.
"""

import json
import os
import tempfile

import numpy as np

from nk_keras import export, files
from nk_keras.errors import UserError

# tf2onnx's default, inside the range it tests (14-18); every runtime of the last years reads it.
OPSET = 15
# A conversion must reproduce the SavedModel to float32 round-off: per output,
# |onnx - tf| <= RTOL |tf| + ATOL max|tf| over the check's points, about 30 ulps (the two
# runtimes order the same float32 sums differently; measured on the shipped models: 1-5 ulps).
RTOL, ATOL = 4e-6, 4e-6
METADATA_KEY = "nk_keras"


class ConversionError(RuntimeError):
  """The converted graph does not reproduce the SavedModel: a bug, not the user's input."""


def check_inputs(economy, n, seed=0):
  """`n` random points as a dict name -> float32 `[n]`: theta uniform on the box (the domain
  ignored: the graph must agree everywhere it may be fed) but for every tenth point, which has
  one parameter just below the box (so `in_box` is checked on both sides), the state at -3..3
  ergodic std."""
  rng = np.random.default_rng(seed)
  theta = rng.uniform(economy.box_low, economy.box_high, (n, economy.n_params))
  outside, which = np.arange(0, n, 10), rng.integers(0, economy.n_params, -(-n // 10))
  theta[outside, which] = (economy.box_low - 0.01 * (economy.box_high - economy.box_low))[which]
  if economy.n_agents:
    # Agents' states are levels with a law of their own (bonds >= 0): drawn from it.
    import tensorflow as tf
    theta32 = tf.constant(theta, tf.float32)
    state = economy.draw_state(theta32, tf.constant([seed, 1], tf.int32))
    return {k: np.asarray(v, np.float32) for k, v in
            export.feeds(economy, state, theta32).items()}
  std = np.asarray(economy.ergodic_std(theta.astype(np.float32))).reshape(n, -1)
  feeds = {name: std[:, min(j, std.shape[1] - 1)] * rng.uniform(-3, 3, n)
           for j, name in enumerate(economy.state_names)}
  feeds.update(zip(economy.param_names, theta.T))
  return {k: np.asarray(v, np.float32) for k, v in feeds.items()}



def convert(model, out, overwrite=False, check_points=1000, seed=0):
  """Converts the policy SavedModel at `model` to an ONNX file `out` (an existing file replaced,
  with `overwrite`, only once the new graph is written and checked). Returns the check on
  `check_points` random points (`compare`)."""
  _require_the_onnx_extra()
  import onnx
  policy = export.LoadedPolicy(model)   # refuses what is not a policy of the contract
  check_target(out, overwrite)
  with tempfile.TemporaryDirectory() as combined:
    _with_in_box(policy, combined)
    proto = _convert(combined, name=os.path.basename(os.path.normpath(model)))
  _restore_input_names(proto, policy.input_names)
  _check_contract(proto, policy)
  entry = proto.metadata_props.add()
  entry.key, entry.value = METADATA_KEY, json.dumps(policy.metadata)
  onnx.checker.check_model(proto, full_check=True)
  with files.replacing(out) as tmp:
    onnx.save(proto, tmp)
    check = compare(policy, tmp, check_points, seed)
  return check


def check_target(out, overwrite):
  """A UserError, before any conversion, if `out` cannot take the ONNX file: not named .onnx
  (onnx writes other names in other formats), a directory, an existing file without
  `overwrite`, an existing file that is not an ONNX model (only ever replace one, as the
  SavedModel export only replaces a SavedModel), or a folder that cannot be written."""
  import onnx
  if os.path.isdir(out):
    raise UserError(f"{out!r} is a directory; --out names the .onnx file to write")
  if not out.endswith(".onnx"):
    raise UserError(f"--out={out!r}: the ONNX file's name must end in .onnx")
  if os.path.exists(out):
    if not overwrite:
      raise UserError(f"{out!r} exists; pass --overwrite to replace it")
    try:
      # Protobuf parses some foreign bytes without complaint: a model has nodes too.
      is_model = bool(onnx.load(out, load_external_data=False).graph.node)
    except Exception:  # onnx raises several types for bytes that are not a model
      is_model = False
    if not is_model:
      raise UserError(f"{out!r} exists and is not an ONNX model; --overwrite replaces only an "
                      f"ONNX model, choose another --out")
  files.writable(os.path.dirname(os.path.abspath(out)))


def _require_the_onnx_extra():
  """A UserError naming what to install unless the converter, the format and the runtime all
  import: they are the optional `onnx` extra, not dependencies of nk-keras."""
  try:
    import onnx, onnxruntime, tf2onnx  # noqa: F401
  except ModuleNotFoundError as e:
    raise UserError(f"ONNX export needs the onnx extra ({e.name} is not installed): "
                    f"pip install 'nk-keras[onnx]', or '.[onnx]' in a checkout") from None


def _with_in_box(policy, path):
  """Saves at `path` a SavedModel whose one signature returns `serving_default`'s outputs and
  `in_box`'s: tf2onnx converts one signature of a TF2 SavedModel, and variables only from one."""
  import tensorflow as tf
  serve, in_box = policy.fn, policy.in_box_fn
  names = policy.input_names

  def both(*inputs):
    feeds = dict(zip(names, inputs))
    return {**serve(**feeds), **in_box(**feeds)}

  module = tf.Module()
  module.loaded = policy.loaded   # tracked, so its variables are saved with the new graph
  module.both = tf.function(both, input_signature=[
      tf.TensorSpec(serve.structured_input_signature[1][n].shape, tf.float32, name=n)
      for n in names], autograph=False)
  tf.saved_model.save(module, path, signatures={"serving_default": module.both})


def _convert(model, name):
  """tf2onnx on `serving_default`: an `onnx.ModelProto` with the signature's names."""
  import logging
  import tensorflow as tf
  import tf2onnx
  from tf2onnx import tf_loader
  # tf2onnx's INFO lines, and TF's deprecation notes on the TF1 freezing it calls, would bury
  # the app's own.
  logging.getLogger("tf2onnx").setLevel(logging.ERROR)
  level = tf.get_logger().level
  tf.get_logger().setLevel("ERROR")
  try:
    graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
        model, None, None, tag="serve", signatures=["serving_default"],
        return_tensors_to_rename=True)
    proto, _ = tf2onnx.convert.from_graph_def(
        graph_def, name=name, input_names=inputs,
        output_names=outputs, opset=OPSET, tensors_to_rename=renames,
        custom_op_handlers={"Expm1": (_expm1, []), "Log1p": (_log1p, [])})
  finally:
    tf.get_logger().setLevel(level)
  # tf2onnx names each input's batch dimension apart (unk__N); the contract has one batch.
  for value in list(proto.graph.input) + list(proto.graph.output):
    dims = value.type.tensor_type.shape.dim
    if dims:
      dims[0].dim_param = "batch"
  return proto


def _restore_input_names(proto, names):
  """Gives the graph's inputs the signature's names: TF lowercases the placeholders of a
  function's arguments (`rho_R` becomes `rho_r`), and tf2onnx names the inputs after them."""
  by_lower = {n.lower(): n for n in names}
  if len(by_lower) != len(names):
    raise UserError(f"input names that differ only in case cannot be exported to ONNX: {names}")
  renames = {v.name: by_lower[v.name.lower()] for v in proto.graph.input
             if v.name not in names and v.name.lower() in by_lower}
  for value in proto.graph.input:
    value.name = renames.get(value.name, value.name)
  for node in proto.graph.node:
    for i, name in enumerate(node.input):
      if name in renames:
        node.input[i] = renames[name]


# ONNX has neither expm1 nor log1p, which economies use to keep small deviations in float32 and
# which then appear in a graph that solves the economy's perturbation (its scales): they become
# exp(x) - 1 and log(1 + x), which lose the small deviations' last digits, harmless there (the
# perturbation's derivatives, not its residuals' values, set the scales).
def _expm1(ctx, node, name, args):
  one = _one_like(ctx, node.output[0])
  node.type = "Exp"
  ctx.insert_new_node_on_output("Sub", node.output[0], inputs=[node.output[0], one])


def _log1p(ctx, node, name, args):
  one = _one_like(ctx, node.input[0])
  plus_one = ctx.make_node("Add", [node.input[0], one])
  ctx.replace_input(node, node.input[0], plus_one.output[0], 0)
  node.type = "Log"


def _one_like(ctx, tensor):
  """The name of a constant 1 of `tensor`'s dtype in tf2onnx's graph `ctx`."""
  from tf2onnx import utils
  dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(tensor))
  return ctx.make_const(utils.make_name("one"), np.array(1, dtype)).output[0]


def _check_contract(proto, policy):
  """ConversionError unless `proto`'s inputs and outputs are the signature's, float32 `[batch]`,
  and `in_box`, bool `[batch]`, and every node is a standard ONNX operator (tf2onnx leaves an op
  it cannot convert in place)."""
  import onnx
  float32, boolean = onnx.TensorProto.FLOAT, onnx.TensorProto.BOOL
  # ["batch"], or ["batch", n_agents] for an agent set's inputs and outputs.
  dims = lambda spec: ["batch", *spec.shape[1:]]
  inputs = policy.fn.structured_input_signature[1]
  for kind, values, want in (
      ("inputs", proto.graph.input, {n: (float32, dims(inputs[n])) for n in policy.input_names}),
      ("outputs", proto.graph.output, {
          **{n: (float32, dims(s)) for n, s in policy.fn.structured_outputs.items()},
          "in_box": (boolean, ["batch"])})):
    got = {v.name: (v.type.tensor_type.elem_type,
                    [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
           for v in values}
    if got != want:
      raise ConversionError(f"the ONNX graph's {kind} {got} are not the signature's {want}")
  foreign = sorted({f"{n.domain}:{n.op_type}" for n in proto.graph.node
                    if n.domain not in ("", "ai.onnx")})
  if foreign:
    raise ConversionError(f"operators outside the ONNX standard in the graph: {foreign}")


def compare(policy, path, n, seed=0):
  """Runs the ONNX file at `path` and `policy`'s `serving_default` on the same `n` random
  points (and `in_box` against the SavedModel's `in_box`); ConversionError if they differ beyond
  float32 round-off (`in_box`: at all). Returns {"outputs": per float output {"max_abs_diff",
  "max_abs"}, "in_box": {"points", "inside"}}."""
  import onnxruntime
  import tensorflow as tf
  feeds = check_inputs(policy.economy, n, seed)
  session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
  got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
  tensors = {k: tf.constant(v) for k, v in feeds.items()}
  want = {k: v.numpy() for k, v in policy.fn(**tensors).items()}
  inside = policy.in_box_fn(**tensors)["in_box"].numpy()
  if not np.array_equal(got["in_box"], inside):
    raise ConversionError(f"the ONNX graph's in_box differs from the SavedModel's at "
                          f"{int(np.sum(got['in_box'] != inside))} of {n} points")
  check = {}
  for name, w in want.items():
    g = got[name]
    scale = float(np.max(np.abs(w)))
    diff = np.abs(g.astype(np.float64) - w)
    if g.shape != w.shape or not np.all(diff <= RTOL * np.abs(w) + ATOL * scale):
      raise ConversionError(f"the ONNX graph's {name} differs from the SavedModel's by up to "
                            f"{np.max(diff):.3g} (largest |{name}| {scale:.3g})")
    check[name] = {"max_abs_diff": float(np.max(diff)), "max_abs": scale}
  return {"outputs": check, "in_box": {"points": n, "inside": int(inside.sum())}}
