"""Generated data is deterministic, learnable, and the image cache heals itself."""

from pathlib import Path

import numpy as np

from tfperf.builtins import data


def test_mnist_like_is_seeded_and_labelled_by_a_teacher():
    x1, y1 = data.mnist_like(512)
    x2, y2 = data.mnist_like(512)
    assert x1.shape == (512, 784) and x1.dtype == np.uint8
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert len(np.unique(y1)) == 10


def test_image_cache_is_written_once_and_rewritten_when_corrupt(tmp_path, capsys):
    first = data.image_shards(24, 3, 32, root=tmp_path)
    digests = [Path(p).read_bytes() for p in first.files]
    again = data.image_shards(24, 3, 32, root=tmp_path)
    assert again.files == first.files and capsys.readouterr().err == ""

    victim = Path(first.files[1])
    victim.write_bytes(victim.read_bytes()[:-50] + b"garbage")
    healed = data.image_shards(24, 3, 32, root=tmp_path)
    err = capsys.readouterr().err
    assert "corrupt" in err and err.count("\n") == 1  # one line naming the cause
    assert [Path(p).read_bytes() for p in healed.files] == digests  # deterministic rewrite

    (first.folder / "manifest.json").write_text("{not json")
    data.image_shards(24, 3, 32, root=tmp_path)
    assert "unreadable" in capsys.readouterr().err


def test_two_runs_sharing_the_cache_both_succeed(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        sets = list(pool.map(lambda _: data.image_shards(24, 3, 32, root=tmp_path), range(2)))
    assert sets[0].files == sets[1].files
    assert data._check(sets[0].folder, 24, 3) is None  # the set in place is whole
    assert [p.name for p in tmp_path.iterdir()] == [sets[0].folder.name]  # no temporary folder left behind


def test_a_cache_that_cannot_be_written_names_tfperf_cache_and_the_path(tmp_path):
    import pytest

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(data.CacheError, match=r"TFPERF_CACHE=.*file.*images-v1"):
        data.image_shards(24, 3, 32, root=blocker)
