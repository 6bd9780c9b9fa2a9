"""Alias of benchmarks/domain_list.py (the issue's entry point)."""
import os
import runpy
import sys

sys.argv[0] = os.path.join(os.path.dirname(os.path.abspath(__file__)), "domain_list.py")
runpy.run_path(sys.argv[0], run_name="__main__")
