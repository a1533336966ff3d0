#!/usr/bin/env python3
"""Like the app's scripts/run_tests.py: run from /workspace/api, the suite in chunks, non-zero if any fails."""
import glob, subprocess, sys

files = sorted(glob.glob("tests/*.sh"))
if not files:
    print("run_tests: no test files found under tests/", file=sys.stderr)
    sys.exit(1)
failed = [f for f in files if subprocess.run(["sh", f]).returncode != 0]
sys.exit(1 if failed else 0)
