"""The files copied to a benchmark device and run there: `runner.py` and its `board_*.py` siblings.

They need only the Python stdlib (>= 3.8), numpy and one interpreter module (ai_edge_litert, or
tflite_runtime 2.14 with numpy<2 on old boards), and never import tfkit: runner.py imports its
siblings as top-level modules (the script's folder is on sys.path), so the set works wherever it
is copied. `tfkit.bench.devices.base.runner_files()` lists them.
"""
