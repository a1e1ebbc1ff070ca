"""The train app's flags are made from TrainOptions' own definition (name, default, bounds,
choices, help); --flagfile reads them from a file; the shipped configs reproduce the shipped
models' options."""

import dataclasses
import json
import os

import pytest
from absl import flags

from nk_keras import cli, training
from nk_keras.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Config file -> (shipped model, the run it reproduces: its metadata, or the run its `--init`
# started from, `init_run`, followed that many times).
CONFIGS = {"nk_stepping.flags": ("nk_stepping", 0), "rank_zlb.flags": ("rank_zlb", 0),
           "rank_zlb_residual.flags": ("rank_zlb_residual", 0),
           "rank_zlb_level.flags": ("rank_zlb_residual", 1),
           "rank_zlb_start.flags": ("rank_zlb_residual", 2),
           "rank_zlb_inertia.flags": ("rank_zlb_inertia", 0),
           "hank_zlb.flags": ("hank_zlb", 0), "hank_zlb_continue.flags": ("hank_zlb", 1),
           "hank_zlb_start.flags": ("hank_zlb", 2)}


def train_flags():
  """A fresh set of the train options' flags, as the train app defines them."""
  values = flags.FlagValues()
  cli.define_flags(training.TrainOptions, training.CHECKS, module="train", flag_values=values)
  return values


def parse(*args):
  return cli.options_from_args(training.TrainOptions, training.CHECKS, args)


def test_every_option_with_help_is_a_flag_with_its_default_and_help():
  values = train_flags()
  fields = [f for f in dataclasses.fields(training.TrainOptions) if "help" in f.metadata]
  assert len(fields) == len(dataclasses.fields(training.TrainOptions)) - 1   # all but jit_compile
  assert sorted(values) == sorted(f.name for f in fields)
  for f in fields:
    assert values[f.name].default == f.default and values[f.name].help.endswith(f.metadata["help"])
  assert [f.name for f in values.get_key_flags_for_module("train")] != []
  assert parse() == training.TrainOptions()


@pytest.mark.parametrize("arg", ["--iterations=0", "--state_scale=0.05", "--regime=magic",
                                 "--normalization=none", "--mc=3", "--clipnorm=0",
                                 "--lr=0.001 --eta_min=0.01", "--regime=cached --pool=10 --batch=100",
                                 "--stratified=maybe"])
def test_bounds_choices_and_checks_refuse_bad_values(arg):
  with pytest.raises(flags.Error):
    parse(*arg.split())


def test_a_flagfile_sets_options_and_the_command_line_wins(tmp_path):
  path = tmp_path / "run.flags"
  path.write_text("# a comment\n--regime=cached\n--pool=5000\n--stratified\n--lr=0.01\n"
                  "--seed=4\n")
  options = parse(f"--flagfile={path}", "--seed=7")
  assert options == training.TrainOptions(regime="cached", pool=5000, stratified=True, lr=0.01,
                                          seed=7)


@pytest.mark.parametrize("config,model,stage", [(c, *v) for c, v in sorted(CONFIGS.items())])
def test_each_config_file_reproduces_its_shipped_model(config, model, stage):
  # Read as the train app reads it: an economy's own defaults fill what the file leaves out.
  options = dataclasses.asdict(app_options(f"--flagfile={os.path.join(ROOT, 'configs', config)}"))
  with open(os.path.join(ROOT, "saved_models", model, "assets", "metadata.json")) as f:
    record = json.load(f)
  for _ in range(stage):
    record = record["init_run"]
  # Runs recorded before the optimizer was an option trained with AdamW.
  shipped = {"optimizer": "adamw", **record["options"]}
  # Options that exist today (older models record a few since renamed); JSON wrote some
  # booleans as strings.
  common = sorted(set(options) & set(shipped))
  assert len(common) >= 18
  assert {k: str(options[k]) for k in common} == {k: str(shipped[k]) for k in common}


def test_every_config_file_is_checked():
  assert sorted(os.listdir(os.path.join(ROOT, "configs"))) == sorted(CONFIGS)


def test_options_check_applies_the_same_conditions_in_python():
  assert training.TrainOptions().check() == training.TrainOptions()
  for bad, message in ((dict(mc=3), "--mc must be even"),
                       (dict(regime="cached", pool=10), "--pool must be")):
    with pytest.raises(UserError, match=message):
      training.TrainOptions(**bad).check()


def app_options(*args):
  """The options the train app runs with for `args`."""
  values = train_flags()
  values(["train", *args])
  return training.options_from_flags(values)


def test_a_bare_economy_flag_trains_that_economys_shipped_recipe():
  assert app_options() == training.TrainOptions()
  assert app_options("--economy=rank_zlb") == parse(
      f"--flagfile={os.path.join(ROOT, 'configs', 'rank_zlb.flags')}")
  # A flag given, on the command line or in a flagfile, wins over the economy's default.
  mixed = app_options("--economy=rank_zlb", "--regime=stepping", "--batch=500")
  assert (mixed.regime, mixed.batch, mixed.iterations) == ("stepping", 500, 100_000)


def test_the_evaluation_size_helps_give_every_economys_own_default():
  """`--eval_theta` (train) and `--n_theta` (evaluate) default to `Economy.eval_theta`; their
  help lists each economy's number, which went stale once (100 for rank_zlb_inertia, 40 used).
  The train app's help is read from its source: importing the app defines its flags globally."""
  import ast

  from nk_keras import economies, reports
  with open(os.path.join(ROOT, "nk_keras", "apps", "train.py")) as f:
    calls = [n for n in ast.walk(ast.parse(f.read())) if isinstance(n, ast.Call)
             and getattr(n.func, "attr", "") == "DEFINE_integer"
             and ast.literal_eval(n.args[0]) == "eval_theta"]
  helps = {"eval_theta": ast.literal_eval(calls[0].args[2]),
           "n_theta": reports.EvaluateOptions.__dataclass_fields__["n_theta"].metadata["help"]}
  for flag, text in helps.items():
    for name in economies.ECONOMIES:
      assert f"{economies.ECONOMIES[name].eval_theta:,} for {name}" in " ".join(text.split()), (
          flag, name, text)
