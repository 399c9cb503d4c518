import json

import numpy as np
import pytest

from hwlib.fileio import atomic_path, atomic_write_json


def test_atomic_json_round_trip(tmp_path):
    p = atomic_write_json(tmp_path / "sub" / "a.json", {"x": [1, 2]})
    assert json.loads(p.read_text()) == {"x": [1, 2]}
    assert [f.name for f in p.parent.iterdir()] == ["a.json"]


def test_failed_write_leaves_previous_file(tmp_path):
    target = tmp_path / "a.npz"
    np.savez(target, v=np.arange(3))
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            np.savez(tmp, v=np.arange(5))
            raise RuntimeError("boom")
    np.testing.assert_array_equal(np.load(target)["v"], np.arange(3))
    assert [f.name for f in tmp_path.iterdir()] == ["a.npz"]


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    umask = os.umask(0)
    os.umask(umask)
    p = atomic_write_json(tmp_path / "b.json", [1])
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask
