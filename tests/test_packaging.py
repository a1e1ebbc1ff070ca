"""The package installs and its console scripts start from any directory; the apps also run as
files and as modules from the repository root."""

import ast
import os
import shutil
import subprocess
import sys
import tomllib

import pytest

import background

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
  PROJECT = tomllib.load(f)["project"]
SCRIPTS = PROJECT["scripts"]
APPS = sorted(name[:-3] for name in os.listdir(os.path.join(ROOT, "apps"))
              if name.endswith(".py") and not name.startswith("_"))


def clean_env():
  """The environment without PYTHONPATH: nothing but the install (or the cwd) finds nk_keras."""
  return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def help_lines(proc):
  """absl prints the help on stdout and exits 1, as it does for every absl app."""
  assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  return proc.stdout


def summary(app):
  """The first line of the app's docstring."""
  with open(os.path.join(ROOT, "apps", f"{app}.py")) as f:
    return ast.get_docstring(ast.parse(f.read())).splitlines()[0]


def test_every_app_has_its_console_script():
  assert sorted(SCRIPTS) == sorted(f"nk-{app}" for app in APPS)
  for script, target in SCRIPTS.items():
    assert target == f"apps.{script[3:]}:run", (script, target)


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
  """A fresh virtual environment with the package installed from a copy of its sources (as from
  a fresh clone). It sees this interpreter's site-packages for the pinned dependencies, so
  nothing is downloaded: `--no-deps --no-index` would fail rather than fetch."""
  root = tmp_path_factory.mktemp("install")
  src = root / "src"
  src.mkdir()
  for name in ("pyproject.toml", "README.md"):
    shutil.copy(os.path.join(ROOT, name), src / name)
  for name in ("nk_keras", "apps"):
    shutil.copytree(os.path.join(ROOT, name), src / name,
                    ignore=shutil.ignore_patterns("__pycache__"))
  env = root / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env)], check=True,
                 timeout=120)
  pip = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "--no-deps", "--no-build-isolation", "--no-index", str(src)],
                       capture_output=True, text=True, timeout=300, env=clean_env())
  assert pip.returncode == 0, pip.stderr[-3000:]
  return env


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
  # Two of them started for real (each spends its time importing TensorFlow), in parallel.
  procs = {script: subprocess.Popen([str(venv / "bin" / script), "--help"], cwd=tmp_path,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=clean_env())
           for script in ("nk-train", "nk-export")}
  for script, proc in procs.items():
    out, err = proc.communicate(timeout=300)
    text = help_lines(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    # The app's own docstring and flags, not absl's bare usage line for pip's wrapper.
    assert text.startswith(summary(script[3:])), (script, text[:500])
    assert "flags:" in text and "--out" in text, (script, text[-2000:])


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
  assert "--regime" in text and "--iterations" in text, text[-2000:]
