"""The seed's exact model.pkl (its train_model.py, unchanged) served by the real binary, with
the answers scikit-learn gives; and a code-running pickle refused at start-up, running nothing."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import requests
from sklearn.datasets import load_iris

from conftest import ROOT, Inferd

SEED_TRAIN = ROOT / "fixtures" / "sklearn" / "seed_train_model.py"
MALICIOUS = ROOT / "fixtures" / "sklearn" / "malicious"
CANARY = Path("/tmp/inferd-sklearn-canary")


@pytest.fixture(scope="module")
def seed_pkl(tmp_path_factory):
    """model.pkl written by the seed's train_model.py, run as its readers run it."""
    work = tmp_path_factory.mktemp("seed")
    subprocess.run([sys.executable, str(SEED_TRAIN)], cwd=work, check=True, capture_output=True)
    return work / "model.pkl"


def test_seed_model_pkl_serves_scikit_learns_answers(start_inferd, seed_pkl):
    server = start_inferd("--model", str(seed_pkl))
    clf = joblib.load(seed_pkl)  # trusted: we just wrote it
    X = load_iris().data.astype(np.float32)
    rows = X[::5]
    r = requests.post(server.url + "/predict",
                      json={"inputs": rows.tolist(), "probabilities": True}, timeout=10)
    assert r.status_code == 200, r.text
    answer = r.json()
    expected = clf.predict(rows.astype(np.float64))
    assert answer["prediction"] == expected.tolist()
    proba = clf.predict_proba(rows.astype(np.float64))
    assert np.allclose(np.array(answer["probabilities"]), proba, atol=1e-5)
    # The seed tutorial's single request.
    r = requests.post(server.url + "/predict", json={"inputs": [5.1, 3.5, 1.4, 0.2]}, timeout=10)
    assert r.json() == {"prediction": [0]}


@pytest.mark.parametrize("name,refused", [
    ("reduce_os_system_p5", "posix.system"),
    ("stack_global_eval", "builtins.eval"),
    ("estimator_state_reduce", "posix.system"),
])
def test_code_running_pickle_is_refused_at_start(tmp_path, name, refused):
    if CANARY.exists():
        CANARY.unlink()
    model = tmp_path / "model.pkl"
    shutil.copy(MALICIOUS / f"{name}.pkl", model)
    with pytest.raises(RuntimeError) as info:
        Inferd(["--model", str(model)], ready_timeout=15)
    assert refused in str(info.value)
    assert str(tmp_path) not in str(info.value), "error shows the model's directory"
    assert not CANARY.exists(), "the payload ran"
