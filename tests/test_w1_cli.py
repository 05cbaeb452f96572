"""``python -m pygan w1 A B``: the exact distance between two sample files, its certificate, plans,
subsampling, JSON, and bad input (exit 2 with one line naming the file or option)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from pygan import ot
from pygan.__main__ import main as pygan_main
from pygan.ot.cli import main


@pytest.fixture
def clouds(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(30, 3)) + 1.0
    np.save(tmp_path / "a.npy", x)
    torch.save(torch.from_numpy(y).float(), tmp_path / "b.pt")
    return tmp_path, x, y.astype(np.float32).astype(np.float64)


def test_w1_matches_emd2_points(clouds, capsys):
    d, x, y = clouds
    assert main([str(d / "a.npy"), str(d / "b.pt")]) == 0
    out = capsys.readouterr().out
    expected = float(ot.emd2_points(x, y))
    assert f"W1 = {expected:.10g}" in out and "status optimal" in out and "duality gap" in out


def test_w1_json_metric_p_and_plan(clouds, capsys):
    d, x, y = clouds
    assert main([str(d / "a.npy"), str(d / "b.pt"), "--metric", "sqeuclidean", "--json", "--plan",
                 str(d / "plan.npz")]) == 0
    row = json.loads(capsys.readouterr().out)
    w2sq = float(ot.emd2_points(x, y, metric="sqeuclidean"))
    assert row["cost"] == pytest.approx(w2sq, rel=1e-12) and row["distance"] == pytest.approx(w2sq ** 0.5)
    assert row["status"] == "optimal" and row["duality_gap"] <= 1e-12 and row["n"] == 40 and row["m"] == 30
    plan = np.load(d / "plan.npz")
    P = np.zeros(tuple(plan["shape"]))
    P[plan["rows"], plan["cols"]] = plan["values"]
    np.testing.assert_allclose(P.sum(1), np.full(40, 1 / 40), atol=1e-14)
    assert main([str(d / "a.npy"), str(d / "b.pt"), "--p", "3", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["cost"] == pytest.approx(float(ot.emd2_points(x, y, metric=3.0)), rel=1e-12)
    assert row["name"] == "W3"


def test_w1_images_weights_and_subsample(tmp_path, capsys):
    rng = np.random.default_rng(1)
    imgs_a, imgs_b = rng.random((25, 1, 4, 4)), rng.random((20, 1, 4, 4))
    np.save(tmp_path / "ia.npy", imgs_a)
    np.save(tmp_path / "ib.npy", imgs_b)
    w = rng.random(25)
    np.save(tmp_path / "w.npy", w)
    assert pygan_main(["w1", str(tmp_path / "ia.npy"), str(tmp_path / "ib.npy"), "--weights-a",
                       str(tmp_path / "w.npy"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    expected = float(ot.emd2_points(imgs_a.reshape(25, -1), imgs_b.reshape(20, -1), w / w.sum(), None))
    assert row["cost"] == pytest.approx(expected, rel=1e-12) and row["dim"] == 16
    args = [str(tmp_path / "ia.npy"), str(tmp_path / "ib.npy"), "--max-samples", "10", "--seed", "3", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["cost"] == first["cost"]  # seeded
    assert first["n"] == first["m"] == 10


def _bad_files(d):
    np.save(d / "ok.npy", np.zeros((5, 2)))
    np.save(d / "one_d.npy", np.zeros(5))
    np.save(d / "three_d.npy", np.zeros((5, 2, 2)))
    np.save(d / "other_dim.npy", np.zeros((4, 3)))
    np.save(d / "nan.npy", np.array([[0.0, np.nan]]))
    np.save(d / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    torch.save({"x": torch.zeros(3, 2)}, d / "dict.pt")
    with open(d / "pickle.pt", "wb") as f:
        pickle.dump(object(), f)
    (d / "points.txt").write_text("1 2\n")
    np.save(d / "w_bad.npy", np.ones(3))


@pytest.mark.parametrize("args, needle", [
    (["missing.npy", "ok.npy"], "missing.npy"),
    (["ok.npy", "one_d.npy"], "one_d.npy"),
    (["three_d.npy", "ok.npy"], "three_d.npy"),
    (["ok.npy", "other_dim.npy"], "dimensions differ"),
    (["nan.npy", "ok.npy"], "NaN"),
    (["pickled.npy", "ok.npy"], "pickled.npy"),
    (["ok.npy", "dict.pt"], "dict.pt"),
    (["ok.npy", "pickle.pt"], "pickle.pt"),
    (["points.txt", "ok.npy"], ".npy or .pt"),
    (["ok.npy", "ok.npy", "--weights-a", "w_bad.npy"], "--weights-a"),
    (["ok.npy", "ok.npy", "--p", "0.5"], "--p"),
    (["ok.npy", "ok.npy", "--max-samples", "0"], "--max-samples"),
])
def test_w1_bad_input_exits_2(tmp_path, capsys, monkeypatch, args, needle):
    _bad_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_w1_unknown_option_exits_2(capsys):
    assert main(["a.npy"]) == 2
    assert main(["a.npy", "b.npy", "--metric", "cosine"]) == 2
