"""Seeded, deterministic data that needs no network.

- :func:`mnist_like`: 784 uint8 features and 10 classes whose labels are a fixed linear function of the
  features (a random "teacher"), so an MLP really learns them, as in the classic Keras MNIST MLP.
- :func:`image_shards`: a small image set written once as JPEG-encoded TFRecord shards into a cache folder
  (``$TFPERF_CACHE`` or ``~/.cache/tfperf``). A manifest holds each shard's SHA-256; a missing or corrupt
  shard or manifest is reported in one line and the set is rewritten. Reading, decoding, resizing and
  augmenting these costs real file I/O and real CPU.
- :func:`remote_wait`: a per-element wait that uses no CPU and stays inside the tf.data runtime (a
  ``SleepDataset`` drained inside the map function), the way the tf.data performance guide simulates
  remote storage. A ``time.sleep`` inside ``tf.py_function``/``tf.numpy_function`` would serialize on
  Python's GIL (measured here: flat at about 800 elements/s from width 4 to 16), so it would measure the
  GIL, not tf.data's parallelism.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfperf.api.base import SEED

FEATURES = 784
CLASSES = 10
IMAGE_SET_VERSION = 1


def mnist_like(n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """`n` examples of 784 uint8 features with learnable labels (argmax of a fixed linear teacher)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, FEATURES), dtype=np.uint8)
    teacher = np.random.default_rng(seed + 1).normal(size=(FEATURES, CLASSES)).astype(np.float32)
    logits = (x.astype(np.float32) / 255.0 - 0.5) @ teacher
    y = np.argmax(logits, axis=1).astype(np.int64)
    return x, y


def cache_root() -> Path:
    return Path(os.environ.get("TFPERF_CACHE") or Path.home() / ".cache" / "tfperf")


@dataclass(frozen=True)
class ImageSet:
    folder: Path
    files: tuple[str, ...]
    count: int
    side: int


def _image(rng: np.random.Generator, label: int, side: int) -> np.ndarray:
    """A class-dependent colour and stripe frequency plus noise: learnable, and JPEG-realistic."""
    hue = np.array([(label * 37) % 256, (label * 91) % 256, (label * 151) % 256], dtype=np.float32)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    phase = rng.uniform(0, 2 * np.pi)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (label + 1) * (xx + 0.3 * yy) + phase)
    img = hue[None, None, :] * (0.4 + 0.6 * stripes[..., None])
    img += rng.normal(0, 18, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check(folder: Path, count: int, shards: int) -> str | None:
    """None if the cached set is complete and intact, else the reason it is not."""
    manifest = folder / "manifest.json"
    if not manifest.exists():
        return "missing"
    try:
        meta = json.loads(manifest.read_text())
        entries = meta["shards"]
        if meta["version"] != IMAGE_SET_VERSION or meta["count"] != count or len(entries) != shards:
            return "manifest does not match this size"
        for e in entries:
            p = folder / e["file"]
            if not p.exists():
                return f"shard {e['file']} is missing"
            if _sha256(p) != e["sha256"]:
                return f"shard {e['file']} is corrupt (checksum mismatch)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"manifest is unreadable ({type(exc).__name__})"
    return None


class CacheError(OSError):
    """The image cache cannot be read or written; the message names TFPERF_CACHE and the path."""


def _write(folder: Path, count: int, shards: int, side: int, seed: int) -> None:
    """Write the set into a unique temporary folder beside `folder`, then rename it into place. Two runs that
    share the cache may both write: the first rename wins, the second finds a complete set in place and
    drops its own copy. A corrupt set is first renamed aside (atomically), then removed."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    try:
        rng = np.random.default_rng(seed)
        entries = []
        per = [count // shards + (1 if i < count % shards else 0) for i in range(shards)]
        index = 0
        for s, n in enumerate(per):
            name = f"shard-{s:05d}-of-{shards:05d}.tfrecord"
            with tf.io.TFRecordWriter(str(tmp / name)) as w:
                for _ in range(n):
                    label = index % 10
                    jpeg = tf.io.encode_jpeg(_image(rng, label, side), quality=90).numpy()
                    ex = tf.train.Example(features=tf.train.Features(feature={
                        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
                        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                    }))
                    w.write(ex.SerializeToString())
                    index += 1
            entries.append({"file": name, "records": n, "sha256": _sha256(tmp / name)})
        meta = {"version": IMAGE_SET_VERSION, "count": count, "side": side, "seed": seed, "shards": entries}
        with open(tmp / "manifest.json", "w", encoding="utf-8") as f:
            f.write(json.dumps(meta, indent=1))
            f.flush()
            os.fsync(f.fileno())
        if folder.exists() and _check(folder, count, shards) is not None:
            aside = Path(tempfile.mkdtemp(prefix=folder.name + ".old-", dir=folder.parent))
            os.replace(folder, aside / "set")
            shutil.rmtree(aside, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:
            if _check(folder, count, shards) is not None:  # someone else's set is in place, but not whole
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def image_shards(count: int, shards: int, side: int, seed: int = SEED, root: Path | None = None) -> ImageSet:
    """The cached JPEG TFRecord set for these parameters, written or rewritten when needed."""
    base = root or cache_root()
    folder = base / f"images-v{IMAGE_SET_VERSION}-n{count}-s{shards}-px{side}-seed{seed}"
    if base.exists() and not base.is_dir():
        raise CacheError(f"image cache (TFPERF_CACHE={base}) at {folder}: {base} is a file, not a folder; point "
                         "TFPERF_CACHE at a folder")
    try:
        problem = _check(folder, count, shards)
        if problem is not None:
            if problem != "missing":
                print(f"tfperf: image cache {folder} {problem}; rewriting it", file=sys.stderr)
            _write(folder, count, shards, side, seed)
    except OSError as exc:
        raise CacheError(f"image cache (TFPERF_CACHE={base}) at {folder}: {exc.strerror or exc}") from None
    files = tuple(str(folder / f"shard-{s:05d}-of-{shards:05d}.tfrecord") for s in range(shards))
    return ImageSet(folder=folder, files=files, count=count, side=side)


IMAGE_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
}


def _sleep_op():
    # tf.data's own test transformation; the public API has no per-element wait that stays in the runtime.
    from tensorflow.python.data.experimental.ops import testing

    return testing.sleep


def remote_wait(x, micros: int):
    """Return `x` after a wait of `micros` that holds no CPU and no GIL (runs inside tf.data)."""
    sleep = _sleep_op()
    # take(1): get_single_element alone would pull twice (element, then end) and so wait twice.
    return tf.data.Dataset.from_tensors(x).apply(sleep(micros)).take(1).get_single_element()


def slow_records(path, micros: int) -> tf.data.Dataset:
    """A TFRecord file whose every record arrives after a wait, like a file on remote storage."""
    return tf.data.TFRecordDataset(path).apply(_sleep_op()(micros))
