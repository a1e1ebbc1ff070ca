"""The documentation: the site builds with warnings as errors (broken links fail), README is the
way in (short, starting with the two commands, its links resolving), BUILD_NOTES stays short
and keeps the full history linked."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# README's first lines: the two commands, exactly (install, train, evaluate; install, test).
FIRST_COMMANDS = [
    "pip install -r requirements.txt && python -m apps.train --out=runs/quickstart"
    " && python -m apps.evaluate --model=runs/quickstart/saved_model",
    "pip install -r requirements.txt && python -m pytest -q",
]
README_LIMIT = 12_000      # bytes: "under 12 KB"
BUILD_NOTES_LIMIT = 40_000
HISTORY = "docs/log/2026-build-history.md"


def read(name):
  with open(os.path.join(ROOT, name), encoding="utf-8") as f:
    return f.read()


def test_site_builds_with_warnings_as_errors(tmp_path):
  """`mkdocs build --strict` into a temporary directory: any warning (a broken link, a missing
  page, a docstring mkdocstrings cannot read) fails it. The CLI reference is generated from the
  apps' flag definitions, so it lists every app and their flags."""
  site = tmp_path / "site"
  env = dict(os.environ, NO_MKDOCS_2_WARNING="1", TF_CPP_MIN_LOG_LEVEL="2")
  # Not -q: mkdocs counts the warnings that make --strict fail only at the levels it logs.
  r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                      "-f", os.path.join(ROOT, "mkdocs.yml"), "-d", str(site)],
                     cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
  cli = (site / "reference" / "cli" / "index.html").read_text()
  for app in ("train", "export", "evaluate", "simulate", "estimate", "reference", "existence"):
    assert f"nk-{app}" in cli
  for flag in ("--regime", "--optimizer", "--policy", "--draws", "--format", "--theta"):
    assert flag in cli, flag
  assert "<!-- cli-reference -->" not in cli
  assert (site / "tutorials" / "quickstart" / "index.html").exists()
  api = (site / "reference" / "api" / "economies" / "index.html").read_text()
  assert "equilibrium" in api and "Economy" in api


def test_readme_starts_with_the_two_commands_and_is_short():
  text = read("README.md")
  size = len(text.encode("utf-8"))
  assert size < README_LIMIT, f"README.md is {size} bytes"
  first_block = re.search(r"```[a-z]*\n(.*?)```", text, re.S)
  assert first_block is not None
  before = text[:first_block.start()].strip()
  assert before.count("\n") == 0 and before.startswith("# "), "only the title comes before them"
  commands = [line for line in first_block.group(1).splitlines()
              if line.strip() and not line.lstrip().startswith("#")]
  assert commands == FIRST_COMMANDS


def _local_links(text):
  for target in re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text):
    if re.match(r"[a-z]+:", target) or target.startswith("#"):
      continue
    yield target.split("#")[0]


def test_files_linked_from_readme_exist():
  links = list(_local_links(read("README.md")))
  assert links, "README links to the docs"
  missing = [t for t in links if not os.path.exists(os.path.join(ROOT, t))]
  assert not missing, missing


def test_build_notes_is_short_and_keeps_the_history_linked():
  text = read("BUILD_NOTES.md")
  size = len(text.encode("utf-8"))
  assert size < BUILD_NOTES_LIMIT, f"BUILD_NOTES.md is {size} bytes"
  for section in ("## Bring your own model (this round)", "## Injected bugs"):
    assert section in text
  assert HISTORY in text
  missing = [t for t in _local_links(text) if not os.path.exists(os.path.join(ROOT, t))]
  assert not missing, missing
  history = read(HISTORY)
  assert "## Injected bugs" in history and "### Estimating the nonlinear model" in history
