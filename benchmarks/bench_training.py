"""Training throughput of ``workbench train``'s pipeline against a bare ``model.fit``.

Both sides train the same network (default trunk, pmi head, augmentation on) with the
same batch size on the same images, in one process, alternating ``--repeats`` times
so that a busy machine slows both alike:

* pipeline: :func:`workbench.learning.training.train` (``LabelBatches`` on worker threads,
  targets built per batch from the sparse labels, evaluation and checkpoint after
  each epoch); its throughput is images per second of the epochs' training time
  (``history[i]["seconds"]``, evaluation and checkpointing excluded);
* baseline: ``model.fit(images, targets, batch_size=B)`` on in-memory numpy arrays
  with the targets precomputed.

The first epoch of each run (tracing and compilation) is not counted in the ratio;
its throughput is printed beside it. The ratio pipeline / baseline should be at
least 0.9 (the pipeline does not starve the model). With ``--from-files`` the
pipeline decodes PNG files with ``load_image`` instead of reading the in-memory
array: in the first epoch (where decoding competes with training for the cores), then
from the decoded-image cache (``workbench.learning.feeding.DECODE_CACHE_BYTES``) unless
``--no-cache`` turns it off.

    .venv/bin/python benchmarks/bench_training.py [--images 1024] [--epochs 3] [--repeats 2] [--from-files]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def synthetic_dataset(num_images: int, *, num_labels: int, image_size: int, random_state: int = 0):
    """Random uint8 images with 1–4 random labels each (throughput does not depend on content)."""
    from workbench.data.datasets import MultiLabelDataset
    from workbench.data.labels import Vocabulary

    rng = np.random.default_rng(random_state)
    images = rng.integers(0, 256, (num_images, image_size, image_size, 3), dtype=np.uint8)
    names = tuple(f"label{c:03d}" for c in range(num_labels))
    label_sets = tuple(tuple(names[c] for c in rng.choice(num_labels, rng.integers(1, 5), replace=False)) for _ in range(num_images))
    return MultiLabelDataset(
        image_paths=tuple(f"images/{n:06d}.png" for n in range(num_images)),
        label_sets=label_sets,
        vocabulary=Vocabulary(names),
        images=images,
        name="synthetic",
    )


def write_images(dataset, root: Path):
    from PIL import Image

    from workbench.data.datasets import MultiLabelDataset

    (root / "images").mkdir(parents=True, exist_ok=True)
    for n, image in enumerate(dataset.images):
        Image.fromarray(image).save(root / dataset.image_paths[n])
    return MultiLabelDataset(image_paths=dataset.image_paths, label_sets=dataset.label_sets, vocabulary=dataset.vocabulary, root=root, name="synthetic (files)")


class EpochTimer:
    """Seconds of every epoch of a bare ``fit``."""

    def __init__(self):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(inner):
                super().__init__()
                inner.seconds = []

            def on_epoch_begin(inner, epoch, logs=None):
                inner._start = time.perf_counter()

            def on_epoch_end(inner, epoch, logs=None):
                inner.seconds.append(time.perf_counter() - inner._start)

        self.callback = _Timer()


def pipeline_throughput(train_set, validation, *, config, embedding, out_dir) -> tuple[float, float]:
    """Images/s of ``train``: (epochs after the first, the first epoch)."""
    from workbench.learning.training import train

    run = train(train_set, validation=validation, config=config, out_dir=out_dir, embedding=embedding, verbose=0)
    per_epoch = [record["seconds"] for record in run.history[1:]]
    images = len(train_set) // config.batch_size * config.batch_size
    return images / statistics.mean(per_epoch), images / run.history[0]["seconds"]


def bare_throughput(train_set, *, config, embedding) -> tuple[float, float]:
    """Images/s of a bare ``model.fit``: (epochs after the first, the first epoch)."""
    from workbench.learning.feeding import batch_targets
    from workbench.learning.models import build_model, compile_model

    images = train_set.images
    targets = batch_targets(train_set.labels, np.arange(len(train_set)), vectors=embedding.vectors)
    model = build_model(config.model, head="pmi", embedding_dim=embedding.embedding_dim, random_state=config.random_state)
    compile_model(model, head="pmi", optimizer=config.optimizer, learning_rate=config.resolved_learning_rate)
    timer = EpochTimer().callback
    model.fit(images, targets, batch_size=config.batch_size, epochs=config.epochs, shuffle=True, callbacks=[timer], verbose=0)
    return len(images) / statistics.mean(timer.seconds[1:]), len(images) / timer.seconds[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1024, help="training images per epoch (a multiple of the batch size)")
    parser.add_argument("--validation-images", type=int, default=128)
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is not timed")
    parser.add_argument("--repeats", type=int, default=2, help="alternating pipeline/baseline pairs")
    parser.add_argument("--from-files", action="store_true", help="the pipeline decodes PNG files instead of reading memory")
    parser.add_argument("--no-cache", action="store_true", help="with --from-files: decode every epoch (no decoded-image cache)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is not timed)")

    import keras

    import workbench.learning.feeding
    from workbench.learning.models import ModelConfig
    from workbench.method.embedding import LabelEmbedding
    from workbench.learning.config import TrainConfig
    from workbench.learning.devices import describe_device

    num_train = args.images - args.images % args.batch_size or args.batch_size
    dataset = synthetic_dataset(num_train + args.validation_images, num_labels=args.labels, image_size=args.image_size)
    train_set, validation = dataset.subset(range(num_train)), dataset.subset(range(num_train, len(dataset)))
    embedding = LabelEmbedding(
        vocabulary=dataset.vocabulary,
        vectors=np.random.default_rng(1).standard_normal((args.labels, args.dim)),
        eigenvalues=np.ones(args.dim),
        settings={"kind": "benchmark"},
    )
    config = TrainConfig(
        head="pmi",
        epochs=args.epochs,
        batch_size=args.batch_size,
        workers=args.workers,
        model=ModelConfig(image_size=args.image_size, width=args.width, depth=args.depth),
    )
    print(f"{describe_device()}; {num_train} images {args.image_size}x{args.image_size}, batch {args.batch_size}, "
          f"width {args.width}, depth {args.depth}, {args.epochs} epochs per run (first not timed), "
          f"pipeline from {'PNG files' if args.from_files else 'memory'}"
          f"{' without the decoded-image cache' if args.from_files and args.no_cache else ''}")
    if args.no_cache:
        workbench.learning.feeding.DECODE_CACHE_BYTES = 0
    pipeline, bare, pipeline_first, bare_first = [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        pipeline_set = write_images(train_set, folder / "data") if args.from_files else train_set
        for repeat in range(args.repeats):
            later, first = pipeline_throughput(pipeline_set, validation, config=config, embedding=embedding, out_dir=folder / f"run{repeat}")
            pipeline.append(later), pipeline_first.append(first)
            keras.backend.clear_session()
            later, first = bare_throughput(train_set, config=config, embedding=embedding)
            bare.append(later), bare_first.append(first)
            keras.backend.clear_session()
            print(f"  repeat {repeat + 1}: pipeline {pipeline[-1]:7.1f} images/s   bare fit {bare[-1]:7.1f} images/s   "
                  f"(first epoch: {pipeline_first[-1]:.1f} / {bare_first[-1]:.1f})", flush=True)
    ratio = statistics.median(pipeline) / statistics.median(bare)
    print(f"pipeline {statistics.median(pipeline):.1f} images/s, bare model.fit {statistics.median(bare):.1f} images/s "
          f"(medians); ratio {ratio:.3f} (target >= 0.9): {'OK' if ratio >= 0.9 else 'BELOW TARGET'}")
    first_ratio = statistics.median(pipeline_first) / statistics.median(bare_first)
    print(f"first epoch (tracing included): pipeline {statistics.median(pipeline_first):.1f} images/s, "
          f"bare {statistics.median(bare_first):.1f} images/s; ratio {first_ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
