"""Emoji-scenes throughput: in-memory generation and writing, against a naive PIL baseline.

Usage::

    .venv/bin/python benchmarks/bench_scenes.py [--images 5000] [--labels 100] [--size 64]

Prints images/s (wall clock and CPU time of this process, so a busy shared machine
shows) for

* in-memory generation (:meth:`SceneGenerator.generate`; glyph set-up reported apart),
* writing PNGs + CSVs to a temporary folder (:meth:`SceneGenerator.write`),
* a naive baseline measured in the same run on a subsample: per image a PIL
  background, then per glyph a LANCZOS resize of the 109-px rendering and
  ``Image.alpha_composite`` (the obvious way to write this generator),

and the ratio of in-memory generation to the baseline. Target: >= 2,000 images/s
at 64x64 on one core.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from workbench.data.emoji import resolve_font_path
from workbench.data.scenes import SceneConfig, SceneGenerator


def _timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def naive_baseline(generator: SceneGenerator, label_sets, *, random_state: int = 0) -> list[np.ndarray]:
    """Per-image PIL work: background, per-glyph resize from 109 px and alpha_composite."""
    font = ImageFont.truetype(str(resolve_font_path()), 109)
    rendered = {}
    for sequence in generator.catalog.sequences:  # one 109-px rendering per class, as the fast path
        left, top, right, bottom = font.getbbox(sequence)
        glyph = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((-left, -top), sequence, font=font, embedded_color=True)
        rendered[sequence] = glyph.crop(glyph.getchannel("A").getbbox())
    sequence_of = dict(zip(generator.vocabulary.names, generator.catalog.sequences))
    size, rng = generator.config.image_size, np.random.default_rng(random_state)
    images = []
    for labels in label_sets:
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        image = Image.new("RGBA", (size, size), colour + (255,))
        for label in labels:
            glyph_size = generator.glyph_sizes[int(rng.integers(len(generator.glyph_sizes)))]
            glyph = rendered[sequence_of[label]].resize((glyph_size, glyph_size), Image.LANCZOS)
            x, y = (int(v) for v in rng.integers(0, size - glyph_size + 1, 2))
            image.alpha_composite(glyph, (x, y))
        images.append(np.asarray(image.convert("RGB")))
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--write-images", type=int, default=1000)
    parser.add_argument("--baseline-images", type=int, default=300)
    args = parser.parse_args()

    config = SceneConfig(num_images=args.images, num_labels=args.labels, image_size=args.size)
    generator, wall, cpu = _timed(lambda: SceneGenerator(config))
    print(f"set-up (catalogue, glyphs at {generator.glyph_sizes} px, topics): {wall:.2f} s wall, {cpu:.2f} s CPU")

    dataset, wall, cpu = _timed(generator.generate)
    fast_cpu = args.images / cpu
    print(
        f"in-memory generation, {args.images} images {args.size}x{args.size}: "
        f"{args.images / wall:,.0f} images/s wall, {fast_cpu:,.0f} images/s CPU "
        f"(mean {dataset.summary()['mean_labels_per_image']:.2f} labels/image)"
    )

    writer = SceneGenerator(SceneConfig(num_images=args.write_images, num_labels=args.labels, image_size=args.size))
    with tempfile.TemporaryDirectory() as folder:
        _, wall, cpu = _timed(lambda: writer.write(os.path.join(folder, "scenes")))
    print(
        f"writing {args.write_images} images (PNG, atomic per file) + CSVs: {args.write_images / wall:,.0f} images/s wall, "
        f"{args.write_images / cpu:,.0f} images/s CPU"
    )

    subsample = dataset.label_sets[: args.baseline_images]
    naive_baseline(generator, subsample[:5])  # warm up
    _, wall, cpu = _timed(lambda: naive_baseline(generator, subsample))
    naive_cpu = len(subsample) / cpu
    print(
        f"naive PIL baseline, {len(subsample)} images: {len(subsample) / wall:,.0f} images/s wall, {naive_cpu:,.0f} images/s CPU "
        "(glyph rendering at 109 px excluded)"
    )
    print(
        f"speed-up of in-memory generation over the baseline (CPU time): {fast_cpu / naive_cpu:.1f}x; "
        f"target 2,000 images/s: {'met' if fast_cpu >= 2000 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
