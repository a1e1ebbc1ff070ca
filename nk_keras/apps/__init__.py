"""The apps, one module each: its flags, `main`, and `run`, the console script `nk-<app>`. From a
checkout they also run as `python -m apps.<app>` or `python apps/<app>.py` (apps/ holds shims)."""
