"""The vendored suite runs in its own pytest process (runner.py), never collected with ours."""

collect_ignore = ["vendor"]
