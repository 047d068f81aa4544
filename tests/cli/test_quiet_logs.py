"""TensorFlow's and LiteRT's own log lines (cuInit, absl, oneDNN, the converter's fully_quantize, the
XNNPACK INFO) are hidden in the CLI and its children, and shown again with `tfkit --verbose`."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tfkit._compat.tflogs import drop_noise, is_noise

NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796558917.196706    7217 port.cc:153] oneDNN custom operations are on. You may see",
    ("E0000 00:00:1796558919.112416    7217 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
     "Failed call to cuInit: UNKNOWN ERROR (303)"),
    "W0000 00:00:1796559224.392166   21522 tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.",
    "fully_quantize: 0, inference_type: 6, input_inference_type: INT8, output_inference_type: INT8",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
]
KEPT = ["E0000 00:00:1796559224.1   21522 interpreter.cc:9] Node number 3 (CONV_2D) failed to invoke.",
        "[convert] int8 clip: converting", "error: model.tflite is not a TFLite flatbuffer", "Epoch 1/3"]


def test_noise_is_told_from_real_lines():
    assert all(is_noise(line.encode()) for line in NOISE)
    assert not any(is_noise(line.encode()) for line in KEPT)
    assert drop_noise("\n".join(NOISE + KEPT)) == "\n".join(KEPT)


FILTERED_CHILD = r'''
import os, subprocess, sys, time
from tfkit._compat.tflogs import StderrFilter
noise, kept = sys.argv[1].encode(), sys.argv[2].encode()
with StderrFilter():
    os.write(2, noise + b"\n" + kept + b"\n")
    subprocess.run([sys.executable, "-c", "import os, sys; os.write(2, sys.argv[1].encode() + b'\\n')", noise.decode()])
    os.write(2, b"\rtraining 50%")  # a progress bar's partial line: through at once, not held back
    time.sleep(0.5)
    os.write(2, b"\r" + noise)  # no newline before the filter stops: dropped all the same
os.write(2, b"\nafter\n")
'''


def test_the_filter_drops_noise_from_this_process_and_its_children():
    done = subprocess.run([sys.executable, "-c", FILTERED_CHILD, NOISE[2], KEPT[0]], capture_output=True,
                          timeout=60, check=False)
    stderr = done.stderr.decode()  # bytes first: text mode would turn the bar's \r into \n
    assert done.returncode == 0, stderr
    assert "cuInit" not in stderr
    assert KEPT[0] in stderr and "\rtraining 50%" in stderr and stderr.endswith("after\n")


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_cli_hides_tensorflow_noise_unless_verbose(tmp_path, verbose):
    argv = [sys.executable, "-m", "tfkit.cli.main", *(["--verbose"] if verbose else []), "build", "--classes", "3",
            "--frames", "2", "--size", "32", "--stages", "1", "--out", str(tmp_path / "m")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    noisy = [line for line in done.stderr.splitlines() if is_noise(line.encode())]
    assert bool(noisy) == verbose, done.stderr
    assert "[build] ->" in done.stderr


TTY_CHILD = r'''
import os, sys
from tfkit._compat.tflogs import StderrFilter
with StderrFilter():
    print(os.isatty(2), os.get_terminal_size(2).columns, flush=True)  # what a progress bar asks
    os.write(2, sys.argv[1].encode() + b"\n" + sys.argv[2].encode() + b"\n")
'''


def test_on_a_terminal_the_filter_keeps_stderr_a_terminal_of_the_same_width():
    import fcntl
    import os
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 132, 0, 0))
    done = subprocess.run([sys.executable, "-c", TTY_CHILD, NOISE[0], KEPT[1]], stderr=slave, stdout=subprocess.PIPE,
                          timeout=60, check=False)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: no writer left
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert done.returncode == 0, seen
    assert done.stdout.split() == [b"True", b"132"]
    assert KEPT[1].encode() in seen and b"absl" not in seen
