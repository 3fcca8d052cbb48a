import gc
import sys

from harness.cli import main

code = main()
# What is left is torch, pandas and their modules, and nothing to save: out of the collector's
# sight, the interpreter's last collections take 0.1 s at exit rather than 0.6.
gc.freeze()
sys.exit(code)
