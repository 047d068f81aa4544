"""Golden files for android_demo/core's JUnit tests, written from real tfkit artifacts.

What it writes into OUT (the Kotlin tests read nothing else):
- model.tflite: a tiny causal streaming model built and converted to int8 by tfkit (calibrated on
  streamed states, as ConvertStep does) with tfkit's metadata embedded by `embed_metadata`;
  model.json: tfkit's own `describe()` of it (metadata, inputs, outputs by signature name).
- bad_labels.tflite, bad_state.tflite: the same graph with metadata tfkit's writer accepts but
  the model contradicts (3 labels for 5 classes; a state the graph lacks).
- frames.bin + frames.json: real video frames (imageio's cockatoo.mp4 and realshort.mp4, decoded
  with PyAV, tfkit.data's decoder) as YUV 4:2:0 planes, what a camera's YUV_420_888 image holds;
  inputs.bin: the int8 model input of each frame, by tfkit's pipeline: YUV -> RGB (the BT.601
  integer conversion the app uses, `yuv_to_rgb` below; compared with tfkit.data's swscale RGB in
  frames.json), `np.rot90` for the camera's rotation, `tfkit.data.clips.resize_crop`,
  `tfkit.data.clips.normalize` and the quantization of the runner's `to_model_input`.
- stream.bin + stream.json: every frame streamed through the LiteRT interpreter by tfkit's
  `StreamRunner` (zero state at each new video), recording what the interpreter was given and
  what it returned at each step.
- sampling.json: tfkit's `sample_indices` at the model's fps for each video's frame rate.

Example:
    .venv/bin/python tools/write_android_goldens.py /tmp/golden --frames 120
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

VIDEOS = Path("/usr/lib/python3/dist-packages/imageio/resources/images")
CLIP = {"frames": 6, "size": 32, "stride": 1, "fps": 10.0, "normalization": "symmetric"}
CLASSES = ("cockatoo", "person", "car", "cup", "nothing")
CAMERA_SIZE = (426, 240)
CLIP_CAMERA_FRAMES = 40  # camera frames of each video the clip model sees  # big videos are scaled to a camera's analysis size before YUV planes are taken


def yuv_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """BT.601 limited range, 8-bit fixed point, chroma shared by each 2x2 block: the conversion of
    android_demo/core's Yuv.kt (and of libyuv's I420ToRGB24 family) for camera frames.

    Example:
        >>> yuv_to_rgb(np.full((2, 2), 235, np.uint8), np.full((1, 1), 128, np.uint8),
        ...            np.full((1, 1), 128, np.uint8))[0, 0].tolist()
        [255, 255, 255]
    """
    h, w = y.shape
    c = y.astype(np.int32) - 16
    d = np.repeat(np.repeat(u.astype(np.int32) - 128, 2, 0), 2, 1)[:h, :w]
    e = np.repeat(np.repeat(v.astype(np.int32) - 128, 2, 0), 2, 1)[:h, :w]
    rgb = np.stack([298 * c + 409 * e + 128, 298 * c - 100 * d - 208 * e + 128, 298 * c + 516 * d + 128], -1)
    return np.clip(rgb >> 8, 0, 255).astype(np.uint8)


def rotate(rgb: np.ndarray, degrees: int) -> np.ndarray:
    """Turn a frame clockwise by `degrees` (CameraX's ImageInfo.rotationDegrees), as np.rot90."""
    return np.ascontiguousarray(np.rot90(rgb, -(degrees // 90)))


def build_model(out: Path) -> tuple[bytes, dict, object, np.ndarray]:
    """A tiny int8 streaming model through tfkit's own convert pieces, metadata embedded (plus the
    Keras clip model it streams, and the calibration clips, for the clip form)."""
    from tfkit._compat.keras import keras
    from tfkit.convert.metadata import embed_metadata, metadata_for
    from tfkit.convert.parity import TFLiteModel, state_quantization
    from tfkit.convert.tflite import convert_keras
    from tfkit.data.clips import normalize
    from tfkit.models import VideoModelSpec, build, stream_states, to_streaming
    from tfkit.models.streaming import stream_calibration

    spec = VideoModelSpec(num_classes=len(CLASSES), frames=CLIP["frames"], size=CLIP["size"], alpha=0.35, stages=3,
                          head_channels=32, frame_stack=True, causal=True)
    keras().utils.set_random_seed(0)
    clip_model = build(spec)
    rng = np.random.default_rng(0)
    for layer in clip_model.layers:  # trained-looking batch-norm statistics, so logits are of normal size
        if isinstance(layer, keras().layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.8, 1.6, c), rng.normal(0, 0.2, c), rng.normal(0, 0.1, c),
                               rng.uniform(0.2, 0.6, c)])
    stream = to_streaming(clip_model, spec)
    calib = normalize(rng.integers(0, 256, (4, CLIP["frames"], CLIP["size"], CLIP["size"], 3), dtype=np.uint8),
                      CLIP["normalization"])
    flatbuffer = convert_keras(stream, "int8", calibration=stream_calibration(stream, calib, every=2))
    quant = {r["state"]: r for r in state_quantization(flatbuffer)}
    states = [{**s.to_dict(), "quantization": quant.get(s.name)} for s in stream_states(stream)]
    inp = TFLiteModel(flatbuffer).interpreter.get_signature_runner().get_input_details()["frame"]
    convert_spec = {"model": spec.to_dict(), "classes": list(CLASSES), "precision": "int8", "form": "stream",
                    "input": {"name": "frame", "shape": [int(s) for s in inp["shape"]],
                              "dtype": np.dtype(inp["dtype"]).name,
                              "quantization": [float(q) for q in inp["quantization"]]},
                    "stream": {"frame_input": "frame", "logits_output": "logits", "states": states,
                               "requantize_states": any(not q["same"] for q in quant.values())}}
    meta = metadata_for(convert_spec, {"clip": CLIP, "classes": list(CLASSES)})
    model = embed_metadata(flatbuffer, meta)
    (out / "model.tflite").write_bytes(model)
    (out / "plain.tflite").write_bytes(flatbuffer)  # no tfkit metadata: the app must infer the layout by names
    (out / "bad_labels.tflite").write_bytes(embed_metadata(flatbuffer, replace(meta, labels=CLASSES[:3])))
    renamed = [dict(s, name="nosuch") if i == 0 else s for i, s in enumerate(meta.stream.states)]
    (out / "bad_state.tflite").write_bytes(embed_metadata(flatbuffer, replace(
        meta, stream=replace(meta.stream, states=tuple(renamed)))))
    return model, meta.to_dict(), clip_model, calib


def build_clip_model(out: Path, clip_model, calib: np.ndarray) -> tuple[bytes, dict]:
    """The clip form of the same network, int8, metadata embedded as ConvertStep does for --form clip."""
    from tfkit.convert.metadata import embed_metadata, metadata_for
    from tfkit.convert.parity import TFLiteModel
    from tfkit.convert.tflite import convert_keras
    from tfkit.models import VideoModelSpec

    flatbuffer = convert_keras(clip_model, "int8", calibration=(x[None] for x in calib))
    inp = TFLiteModel(flatbuffer).input
    spec = VideoModelSpec(num_classes=len(CLASSES), frames=CLIP["frames"], size=CLIP["size"], alpha=0.35, stages=3,
                          head_channels=32, frame_stack=True, causal=True)
    convert_spec = {"model": spec.to_dict(), "classes": list(CLASSES), "precision": "int8", "form": "clip",
                    "input": {"name": inp["name"], "shape": [int(s) for s in inp["shape"]],
                              "dtype": np.dtype(inp["dtype"]).name,
                              "quantization": [float(q) for q in inp["quantization"]]}}
    meta = metadata_for(convert_spec, {"clip": CLIP, "classes": list(CLASSES)})
    model = embed_metadata(flatbuffer, meta)
    (out / "clip.tflite").write_bytes(model)
    return model, meta.to_dict()


def write_clip_calls(out: Path, model: bytes, meta: dict, frames: list[dict], rgbs: list[np.ndarray]) -> dict:
    """The clip model run as the app runs it: each video's frames sampled at the model's fps by tfkit's
    sample_indices, and after each sampled frame (once T are in) the last T, oldest first."""
    from ai_edge_litert.interpreter import Interpreter

    from tfkit.data.clips import sample_indices
    from tfkit.types import ClipSpec

    interpreter = Interpreter(model_content=model, num_threads=1)
    interpreter.allocate_tensors()
    inp, outp = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    calls = []
    with open(out / "clip.bin", "wb") as f:
        for video in ("realshort.mp4", "cockatoo.mp4"):
            kept = [(r, rgb) for r, rgb in zip(frames, rgbs) if r["video"] == video][:CLIP_CAMERA_FRAMES]
            src_fps = kept[0][0]["src_fps"]
            ticks = ticks_inside(len(kept), src_fps, meta["fps"])
            picked = sample_indices(len(kept), src_fps, ClipSpec(frames=ticks, size=meta["size"], fps=meta["fps"]))
            sampled = [to_int8_input(kept[i][1], meta) for i in picked]
            for end in range(meta["frames"], len(sampled) + 1):
                clip = np.stack(sampled[end - meta["frames"]:end])[None]
                interpreter.set_tensor(inp["index"], clip)
                interpreter.invoke()
                f.write(clip.tobytes())
                f.write(interpreter.get_tensor(outp["index"]).tobytes())
                calls.append({"video": video, "sampled": [int(i) for i in picked[end - meta["frames"]:end]]})
    layout = {"calls": calls, "input_bytes": int(np.prod(inp["shape"])), "output_bytes": int(np.prod(outp["shape"]))}
    (out / "clip.json").write_text(json.dumps(layout, indent=1))
    return layout


def video_frames(path: Path, limit: int):
    """(Y, U, V) uint8 planes of the first `limit` frames, 4:2:0 at the camera size, plus tfkit.data's
    own RGB of the same frame (swscale) to measure how far the app's conversion is from it."""
    import av
    from av.video.reformatter import VideoReformatter

    reformat = VideoReformatter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        scale = min(1.0, min(CAMERA_SIZE) / min(stream.width, stream.height))
        w, h = 2 * round(stream.width * scale / 2), 2 * round(stream.height * scale / 2)
        for i, frame in enumerate(container.decode(stream)):
            if i >= limit:
                break
            yuv = reformat.reformat(frame, width=w, height=h, format="yuv420p")
            planes = [np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:, :pw]
                      for p, pw in zip(yuv.planes, (w, w // 2, w // 2))]
            swscale = reformat.reformat(frame, width=w, height=h, format="rgb24").to_ndarray()
            yield [np.ascontiguousarray(p[:ph]) for p, ph in zip(planes, (h, h // 2, h // 2))], swscale


def to_int8_input(rgb: np.ndarray, meta: dict) -> np.ndarray:
    """tfkit's path from an upright RGB frame to the model's int8 frame tensor."""
    from tfkit.data.clips import normalize, resize_crop

    x = normalize(resize_crop(rgb, meta["size"]), meta["normalization"])
    scale, zero = meta["input"]["quantization"]
    return np.clip(np.round(x / np.float32(scale) + np.float32(zero)), -128, 127).astype(np.int8)


def write_frames(out: Path, meta: dict, limit: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """frames.bin/inputs.bin/rotated.bin + frames.json; returns the int8 inputs (upright) and RGB frames in order."""
    from tfkit.data.video import probe

    records, inputs, rgbs = [], [], []
    fps_of = {name: probe(VIDEOS / name).fps for name in ("realshort.mp4", "cockatoo.mp4")}
    with open(out / "frames.bin", "wb") as yuv_file, open(out / "inputs.bin", "wb") as in_file, \
            open(out / "rotated.bin", "wb") as rot_file:
        for name, count in (("realshort.mp4", limit), ("cockatoo.mp4", limit)):
            for i, ((y, u, v), swscale) in enumerate(video_frames(VIDEOS / name, count)):
                rgb = yuv_to_rgb(y, u, v)
                rgbs.append(rgb if i < CLIP_CAMERA_FRAMES else None)  # only the clip calls need them
                yuv_file.writelines(plane.tobytes() for plane in (y, u, v))
                upright = to_int8_input(rgb, meta)
                in_file.write(upright.tobytes())
                inputs.append(upright)
                degrees = (len(records) % 4) * 90
                rot_file.write(to_int8_input(rotate(rgb, degrees), meta).tobytes())
                diff = np.abs(rgb.astype(np.int16) - swscale.astype(np.int16))
                records.append({"video": name, "index": i, "src_fps": fps_of[name], "width": y.shape[1], "height": y.shape[0],
                                "rotation": degrees, "new_stream": i == 0,
                                "swscale_mean_abs_diff": float(diff.mean()), "swscale_max_abs_diff": int(diff.max())})
    (out / "frames.json").write_text(json.dumps({"frames": records, "tensor_bytes": int(inputs[0].size)}, indent=1))
    return inputs, rgbs


def write_stream(out: Path, model: bytes, inputs: list[np.ndarray], frames: list[dict]) -> dict:
    """Stream every frame through tfkit's StreamRunner, recording each interpreter call."""
    from tfkit.convert.parity import StreamRunner, _to_float

    runner = StreamRunner(model, threads=1)
    names_in = sorted(runner.inputs)
    names_out = sorted(runner.outputs)
    calls = []
    real = runner.runner

    def recording(**feed):
        got = real(**feed)
        calls.append(({k: np.asarray(feed[k]).copy() for k in names_in}, {k: got[k].copy() for k in names_out}))
        return got

    runner.runner = recording
    frame_detail = runner.inputs["frame"]
    for record, x in zip(frames, inputs):
        if record["new_stream"]:
            runner.reset()
        runner.step(_to_float(x, frame_detail))  # dequantized: StreamRunner quantizes it back bit for bit
        if not np.array_equal(calls[-1][0]["frame"].reshape(-1), x.reshape(-1)):
            raise AssertionError(f"StreamRunner fed step {len(calls) - 1} a frame other than tfkit's int8 input")
    with open(out / "stream.bin", "wb") as f:
        for given, got in calls:
            f.writelines(given[name].tobytes() for name in names_in)
            f.writelines(got[name].tobytes() for name in names_out)
    layout = {"steps": len(calls), "resets": [i for i, r in enumerate(frames) if r["new_stream"]],
              "inputs": [{"name": n, "bytes": int(calls[0][0][n].nbytes), "dtype": str(calls[0][0][n].dtype)}
                         for n in names_in],
              "outputs": [{"name": n, "bytes": int(calls[0][1][n].nbytes), "dtype": str(calls[0][1][n].dtype)}
                          for n in names_out]}
    (out / "stream.json").write_text(json.dumps(layout, indent=1))
    write_requant(out, [got for _, got in calls], runner.outputs)
    return layout


def write_requant(out: Path, outputs: list[dict], details: dict) -> None:
    """Real int8 state outputs carried into an input whose (scale, zero point) differ, by the board
    runner's carrier (board_stream.carrier), checked against the host's StreamRunner arithmetic."""
    from tfkit.bench.board import board_stream
    from tfkit.convert.parity import _to_dtype, _to_float

    carrier = getattr(board_stream, "carrier", None) or board_stream._carrier  # public since the stream-timing merge
    cases = []
    for name in ("temporal_window_out", "stem_shift_out", "s2b2_shift_out"):
        src = {"dtype": np.int8, "quantization": tuple(details[name]["quantization"])}
        scale, zero = src["quantization"]
        for dst_q in ((scale * 1.37, min(127, zero + 5)), (scale * 0.61, max(-128, zero - 9))):
            dst = {"dtype": np.int8, "quantization": (float(np.float32(dst_q[0])), int(dst_q[1]))}
            carry, changes = carrier(src, dst)
            values = np.stack([o[name] for o in outputs[:20]])
            got = np.stack([carry(v) for v in values])
            host = _to_dtype(_to_float(values, src), dst)
            if not changes or not np.array_equal(got, host):
                raise AssertionError(f"the board and host runners carry {name} differently")
            cases.append({"state": name, "src": [float(scale), int(zero)], "dst": list(dst["quantization"]),
                          "values": values.reshape(-1).tolist(), "expected": got.reshape(-1).tolist()})
    (out / "requant.json").write_text(json.dumps({"cases": cases}))


def ticks_inside(n_frames: int, src_fps: float, fps: float) -> int:
    """How many ticks of the model's clock fall on one of the video's `n_frames` frames (k = 0, 1, ...)."""
    from tfkit.data.clips import sample_indices
    from tfkit.types import ClipSpec

    every = sample_indices(10**6, src_fps, ClipSpec(frames=int(n_frames * fps / src_fps) + 2, size=32, fps=fps))
    return int((every <= n_frames - 1).sum())


def write_sampling(out: Path, fps: float) -> None:
    from tfkit.data.clips import sample_indices
    from tfkit.data.video import probe
    from tfkit.types import ClipSpec

    cases = []
    for name in ("realshort.mp4", "cockatoo.mp4"):
        info = probe(VIDEOS / name)
        want = ticks_inside(info.frames, info.fps, fps)
        picked = sample_indices(info.frames, info.fps, ClipSpec(frames=want, size=32, fps=fps))
        cases.append({"video": name, "src_fps": info.fps, "frames": info.frames, "indices": picked.tolist()})
    (out / "sampling.json").write_text(json.dumps({"fps": fps, "cases": cases}, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--frames", type=int, default=400, help="at most this many frames of each video")
    args = parser.parse_args(argv)
    for name in ("cockatoo.mp4", "realshort.mp4"):
        if not (VIDEOS / name).is_file():
            print(f"error: {VIDEOS / name} is missing; install Debian's python3-imageio (apt-get install -y "
                  "python3-imageio)", file=sys.stderr)
            return 1
    args.out.mkdir(parents=True, exist_ok=True)
    from tfkit.convert.metadata import describe

    model, meta, clip_model, calib = build_model(args.out)
    (args.out / "model.json").write_text(json.dumps(describe(model), indent=1))
    clip, clip_meta = build_clip_model(args.out, clip_model, calib)
    (args.out / "clip_model.json").write_text(json.dumps(describe(clip), indent=1))
    inputs, rgbs = write_frames(args.out, meta, args.frames)
    frames = json.loads((args.out / "frames.json").read_text())["frames"]
    layout = write_stream(args.out, model, inputs, frames)
    clip_calls = write_clip_calls(args.out, clip, clip_meta, frames, rgbs)
    write_sampling(args.out, meta["fps"])
    print(json.dumps({"out": str(args.out), "frames": len(frames), "steps": layout["steps"],
                      "clip_calls": len(clip_calls["calls"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
