"""The package installs no top-level name but nk_keras, and its console scripts start from any
directory; the apps also run as files and as modules from the repository root."""

import ast
import csv
import io
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

import background

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
  PROJECT = tomllib.load(f)["project"]
SCRIPTS = PROJECT["scripts"]


def modules(folder):
  return sorted(name[:-3] for name in os.listdir(os.path.join(ROOT, folder))
                if name.endswith(".py") and not name.startswith("_"))


APPS = modules(os.path.join("nk_keras", "apps"))


def clean_env():
  """The environment without PYTHONPATH: nothing but the install (or the cwd) finds nk_keras."""
  return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def help_lines(proc):
  """The help, on stdout, of an app that exited 0 after printing it."""
  assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  return proc.stdout


def summary(app):
  """The first line of the app's docstring."""
  with open(os.path.join(ROOT, "nk_keras", "apps", f"{app}.py")) as f:
    return ast.get_docstring(ast.parse(f.read())).splitlines()[0]


def test_every_app_has_its_console_script_and_its_shim():
  assert sorted(SCRIPTS) == sorted(f"nk-{app}" for app in APPS)
  for script, target in SCRIPTS.items():
    assert target == f"nk_keras.apps.{script[3:]}:run", (script, target)
  assert modules("apps") == APPS


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
  """The wheel built from a copy of the sources (as in a fresh clone, whose other top-level
  folders setuptools could pick up too). Built in this interpreter, which has setuptools (the
  test extra), without build isolation, so nothing is downloaded."""
  root = tmp_path_factory.mktemp("build")
  src = root / "src"
  src.mkdir()
  for name in ("pyproject.toml", "README.md"):
    shutil.copy(os.path.join(ROOT, name), src / name)
  for name in ("nk_keras", "apps", "benchmarks", "tests"):
    shutil.copytree(os.path.join(ROOT, name), src / name,
                    ignore=shutil.ignore_patterns("__pycache__"))
  pip = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        "--no-build-isolation", "--no-index", "--wheel-dir", str(root / "dist"),
                        str(src)], capture_output=True, text=True, timeout=300, env=clean_env())
  assert pip.returncode == 0, pip.stderr[-3000:]
  [built] = (root / "dist").glob("*.whl")
  return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel):
  """A fresh virtual environment with the wheel installed. It sees this interpreter's
  site-packages for the pinned dependencies, so nothing is downloaded: `--no-deps --no-index`
  would fail rather than fetch."""
  env = tmp_path_factory.mktemp("install") / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env)], check=True,
                 timeout=120)
  pip = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "--no-deps", "--no-index", str(wheel)],
                       capture_output=True, text=True, timeout=300, env=clean_env())
  assert pip.returncode == 0, pip.stderr[-3000:]
  return env


def test_the_wheel_adds_no_top_level_name_but_nk_keras(wheel):
  """What pip installs is the wheel's RECORD: nothing outside nk_keras but the metadata (a
  top-level `apps` would shadow, or be shadowed by, any other project's)."""
  with zipfile.ZipFile(wheel) as z:
    [record] = [n for n in z.namelist() if n.endswith(".dist-info/RECORD")]
    paths = [row[0] for row in csv.reader(io.TextIOWrapper(z.open(record), "utf-8"))]
    top_level = z.read(record.replace("RECORD", "top_level.txt")).decode().split()
  names = {path.split("/")[0] for path in paths}
  assert names - {os.path.dirname(record)} == {"nk_keras"}, sorted(names)
  assert top_level == ["nk_keras"]
  assert "nk_keras/apps/train.py" in paths


# Run in the environment: each console script's target, found without importing TensorFlow.
RESOLVE = """
import ast, importlib.metadata, importlib.util
for ep in importlib.metadata.entry_points(group="console_scripts"):
  if ep.name.startswith("nk-"):
    origin = importlib.util.find_spec(ep.module).origin
    tree = ast.parse(open(origin).read())
    defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    print(ep.name, ep.module, origin, ep.attr in defined)
"""

# A flag of each app's own, which its --help must list (besides --out, which all have).
OWN_FLAG = {"train": "--iterations", "evaluate": "--sweep_points", "simulate": "--irf_periods",
            "export": "--format", "estimate": "--policy", "reference": "--economy",
            "existence": "--draws"}


def test_installed_scripts_resolve_and_start_from_another_directory(venv, tmp_path):
  resolved = subprocess.run([str(venv / "bin" / "python"), "-c", RESOLVE], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env=clean_env())
  assert resolved.returncode == 0, resolved.stderr[-2000:]
  rows = [line.split() for line in resolved.stdout.splitlines()]
  assert sorted(r[0] for r in rows) == sorted(SCRIPTS), resolved.stdout
  for script, module, origin, defined in rows:
    assert origin.startswith(str(venv)), (script, origin)   # the install, not this checkout
    assert defined == "True", (script, module)
    assert os.access(venv / "bin" / script, os.X_OK), script
  # Every one started for real (each spends its time importing TensorFlow), in parallel.
  assert sorted(OWN_FLAG) == APPS
  procs = {script: subprocess.Popen([str(venv / "bin" / script), "--help"], cwd=tmp_path,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=clean_env())
           for script in SCRIPTS}
  for script, proc in procs.items():
    out, err = proc.communicate(timeout=300)
    text = help_lines(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    # The app's own docstring and flags, not absl's bare usage line for pip's wrapper.
    app = script[3:]
    assert text.startswith(summary(app)), (script, text[:500])
    assert "flags:" in text and "--out" in text and OWN_FLAG[app] in text, (script, text[-2000:])


HOWS = [["apps/train.py"], ["-m", "apps.train"]]
# Each start's process runs in the background lane (tests/background.py) while earlier tests run.
UNINSTALLED = {tuple(how): background.job(
    f"train_help_{i}", [sys.executable, *how, "--help"], cwd=ROOT, timeout=300, env=clean_env(),
    fixture="uninstalled_start", needs=lambda item, how=how: background.param(item, "how") == how)
    for i, how in enumerate(HOWS)}


@pytest.fixture()
def uninstalled_start(how):
  return UNINSTALLED[tuple(how)].result()


@pytest.mark.parametrize("how", HOWS)
def test_the_train_app_starts_from_the_root_uninstalled(uninstalled_start, how):
  text = help_lines(uninstalled_start)
  assert text.startswith(summary("train")), text[:500]   # the app's, though run by its shim
  assert "--regime" in text and "--iterations" in text, text[-2000:]
