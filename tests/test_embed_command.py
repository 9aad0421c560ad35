"""`appliance embed`: the .npz format auditors rely on."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from appliance.cli import main
from appliance.errors import InputError
from lfr_tools.evaluate.embed_files import collect_images, embed_files

from eval_helpers import eval_engine, lfw_dev_or_skip


@pytest.fixture(scope="module")
def engine():
    return eval_engine()


def _inputs(tmp_path):
    lfw = lfw_dev_or_skip()
    folder = tmp_path / "imgs"
    folder.mkdir()
    same = sorted((lfw / "Abel_Pacheco").glob("*.jpg"))[:2]
    other = sorted((lfw / "Aaron_Eckhart").glob("*.jpg"))[:1]
    for p in same + other:
        (folder / p.name).write_bytes(p.read_bytes())
    cv2.imwrite(str(folder / "zz_blank.png"), np.full((120, 160, 3), 90, np.uint8))
    return folder


def test_embed_writes_paths_ok_embeddings_model_id(tmp_path, engine):
    folder = _inputs(tmp_path)
    out = tmp_path / "e.npz"
    summary = embed_files([folder], out, engine, progress=False)
    data = np.load(out)
    assert set(data.files) == {"paths", "ok", "embeddings", "model_id"}
    assert [p.split("/")[-1] for p in data["paths"]][-1] == "zz_blank.png"
    assert data["ok"].dtype == bool and list(data["ok"]) == [True, True, True, False]
    assert data["embeddings"].dtype == np.float32 and data["embeddings"].shape == (4, 192)
    assert not data["embeddings"][3].any()
    assert np.allclose(np.linalg.norm(data["embeddings"][:3], axis=1), 1.0, atol=1e-4)
    assert str(data["model_id"]) == engine.model_id and summary["faces"] == 3
    e = data["embeddings"]
    # Aaron_Eckhart sorts first, then the two Abel_Pacheco photos
    assert e[1] @ e[2] > e[0] @ e[1] + 0.2


def test_embed_command_line_and_bad_input(tmp_path, capsys):
    folder = _inputs(tmp_path)
    assert main(["embed", str(folder), "--out", str(tmp_path / "x.npz"), "--quiet"]) == 0
    assert np.load(tmp_path / "x.npz")["ok"].sum() == 3
    assert main(["embed", str(tmp_path / "missing"), "--out", str(tmp_path / "y.npz")]) == 4
    assert "fix:" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files"):
        collect_images([tmp_path / "empty"])


def test_batched_eval_path_matches_embed_image(engine):
    """The eval's batched detect/align/embed gives embed_image's face and vector."""
    from lfr_tools.evaluate import degrade
    from lfr_tools.evaluate.embedding import EmbeddingCache, path_seed, read_image

    lfw = lfw_dev_or_skip()
    paths = sorted(lfw.glob("Ab*/*.jpg"))[:7]
    batched, ok = EmbeddingCache(engine).embed(paths, "small_face_32")
    for path, vector, found in zip(paths, batched, ok, strict=True):
        single, _ = engine.embed_image(degrade.apply("small_face_32", read_image(path), path_seed(path)))
        assert found == (single is not None)
        if found:
            assert float(vector @ single) > 0.9999
