"""Peak memory of loading an image folder (docs/MODELS-AND-DATA.md; benchmarks/RESULTS.md).

    python benchmarks/load_memory.py [N] [SIZE]

Writes N random RGB PNGs of SIZE x SIZE (default 1000 at 224) under a temporary folder (two
classes), then, in a fresh process, loads them with `load_image_folder` and prints the growth of the
peak resident set (ru_maxrss) over the process's peak before the call, next to the size of the
stored tensors and of the float32 tensors the same images would take.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = """
import resource, sys, torch
from deepdig_fast.data import load_image_folder
torch.zeros(1)  # torch's own start-up memory counts before the call
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
d = load_image_folder(sys.argv[1])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
stored = sum(t.numel() * t.element_size() for t in (d.x_train, d.x_test))
f32 = sum(t.numel() * 4 for t in (d.x_train, d.x_test))
print(f"{len(d) + d.x_test.shape[0]} images {list(d.sample_shape)} stored as {d.x_train.dtype}: "
      f"{stored / 2**20:.0f} MiB (float32 would be {f32 / 2**20:.0f} MiB); peak RSS grew by "
      f"{(after - before) / 2**10:.0f} MiB")
"""


def main() -> int:
    from PIL import Image

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 224
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "folder"
        for i in range(n):
            folder = root / ("a" if i % 2 else "b")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB").save(folder / f"{i}.png")
        subprocess.run([sys.executable, "-c", CHILD, str(root)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
