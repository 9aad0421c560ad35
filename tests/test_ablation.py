"""The ablation runner: its score rules and templates, and that its 'unit' row is what the unit runs."""
from __future__ import annotations

import numpy as np
import pytest

from appliance.vision.align import ARCFACE_5, align, least_squares, similarity
from appliance.vision.embed import Embedder
from lfr_tools.evaluate import ablation
from lfr_tools.evaluate.ablation_embed import embed_all
from lfr_tools.evaluate.ablation_report import UNIT


def test_least_squares_recovers_a_similarity_and_fits_all_points():
    rng = np.random.default_rng(3)
    angle, scale, shift = 0.4, 1.7, np.array([4.0, -9.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = rng.uniform(0, 100, (5, 2))
    assert np.allclose(least_squares(src, src @ rot.T + shift), np.hstack([rot, shift[:, None]]), atol=1e-9)
    noisy = ARCFACE_5 + rng.normal(0, 1.0, (5, 2))
    m = similarity(noisy, "lsq")
    residual = np.linalg.norm(noisy @ m[:, :2].T + m[:, 2] - ARCFACE_5, axis=1)
    assert residual.max() < 4.0 and residual.mean() < 2.0


def test_five_points_use_the_arcface_template_and_six_the_merged_mouth():
    face = np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)
    five = ARCFACE_5 * 1.5 + 10
    six = np.vstack([five[:3], five[3:].mean(axis=0), [[0, 0], [1, 1]]])
    for pts, method in ((five, "lsq"), (six, "lmeds")):
        m = similarity(pts, method)
        assert np.allclose(m[:, :2], np.eye(2) / 1.5, atol=1e-3)
        assert align(face, pts, method).shape == (112, 112, 3)


def test_flip_pair_is_one_call_and_sums_before_normalising():
    class Model:
        input_shape = (2, 112, 112, 3)
        pixels = False
        calls = 0

        def run(self, x):
            Model.calls += 1
            return [x.reshape(2, -1)[:, :8].copy()]

    faces = np.random.default_rng(1).integers(0, 255, (3, 112, 112, 3), np.uint8)
    out = Embedder(Model(), "toy", flip=True).embed(faces)
    assert Model.calls == 3 and out.shape == (3, 8)
    plain = Embedder(Model(), "toy").raw(faces)
    mirror = Embedder(Model(), "toy").raw(faces[:, :, ::-1])
    expected = plain + mirror
    assert np.allclose(out, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)


def test_margin_and_cohort_rules():
    scores = np.array([[0.9, 0.8, 0.1, 0.0], [0.5, 0.1, 0.0, 0.05]])
    best, s = ablation.margin_rule(1.0)(scores)
    assert list(best) == [0, 0] and np.allclose(s, [0.1, 0.4])
    _, z = ablation.cohort_rule(2)(scores)
    assert z[1] > z[0]


def test_templates_mean_first_and_rows():
    vectors = np.array([[1, 0], [0, 1], [1, 0]], np.float32)
    identity = np.array([0, 0, 1])
    mean = ablation.template(vectors, identity, "mean")
    assert np.allclose(mean.vectors[0], [2 ** -0.5, 2 ** -0.5]) and list(mean.identity) == [0, 1]
    assert np.allclose(ablation.template(vectors, identity, "first").vectors[0], [1, 0])
    assert len(ablation.template(vectors, identity, "rows").vectors) == 3


@pytest.mark.dataset
def test_the_unit_row_is_what_the_unit_embeds(engine, lfw):
    paths = [sorted(folder.glob("*.jpg"))[0] for folder in sorted(lfw.iterdir())[:6]]
    emb = embed_all(engine, engine.mesh, paths, progress=False)
    alignment, flip = UNIT
    rows = (emb.flip if flip else emb.plain)[alignment]
    from lfr_tools.evaluate.embedding import read_image

    for path, row in zip(paths, rows):
        vector, _ = engine.embed_image(read_image(path))
        assert float(vector @ row) > 0.9999, path.name
