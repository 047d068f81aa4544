"""Small measurement helpers shared by tests."""
from __future__ import annotations

import numpy as np


def content_shift(before: np.ndarray, after: np.ndarray) -> tuple[int, int]:
    """(dx, dy) that moves `before`'s content onto `after`'s (grey 2-D frames), by windowed phase
    correlation.

    The cross-power spectrum is only half-whitened (divided by sqrt of its magnitude): full
    whitening would let the sensor noise, strong where the smooth texture is weak, pick the peak.
    """
    h, w = before.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    a = np.fft.fft2((before - before.mean()) * window)
    b = np.fft.fft2((after - after.mean()) * window)
    cross = b * np.conj(a)
    surface = np.fft.ifft2(cross / (np.sqrt(np.abs(cross)) + 1e-9)).real
    dy, dx = np.unravel_index(np.argmax(surface), surface.shape)
    return (int(dx - w if dx > w // 2 else dx), int(dy - h if dy > h // 2 else dy))


def unfollowable_models():
    """Two models every graph technique must refuse by name: one with a Lambda layer 'double'
    (after a conv 'conv'), and a subclassed one."""
    from tfkit._compat.keras import keras

    K = keras()
    x = inp = K.Input((8, 8, 3))
    x = K.layers.Conv2D(4, 3, name="conv")(x)
    x = K.layers.Lambda(lambda t: t * 2.0, name="double")(x)

    class Sub(K.Model):
        def call(self, t):
            return t

    return K.Model(inp, x), Sub()


def install_plugin(tmp_path, monkeypatch, module: str, source: str, group: str, entries: dict[str, str],
                   registry) -> None:
    """A real installed plug-in for `registry`: MODULE.py plus a .dist-info whose entry_points.txt
    declares `entries` (name -> "module:attr") under `group`, on sys.path, with the registry told
    to look again (what `importlib.metadata` finds for a pip-installed package)."""
    import textwrap

    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    dist = tmp_path / f"{module}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entries.items())
    (dist / "entry_points.txt").write_text(f"[{group}]\n{lines}")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
