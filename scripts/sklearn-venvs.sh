#!/usr/bin/env bash
# The two scikit-learn releases the pickle parity tests cover, side by side, idempotently:
#   .venv       the current scikit-learn (the project's main environment, scripts/setup-python)
#   .venv-sk13  scikit-learn 1.3, to prove files from older releases load too
# Usage:
#   scripts/sklearn-venvs.sh                  create both environments
#   scripts/sklearn-venvs.sh --generate DIR   also write parity fixtures for both into DIR
#                                             (DIR/<version>/...; fixtures/sklearn to refresh
#                                             the committed ones)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! .venv/bin/python -c "import sklearn, joblib, lz4" 2>/dev/null; then
  scripts/setup-python
fi

if [ ! -x .venv-sk13/bin/python ]; then
  "$PY" -m venv .venv-sk13
fi
if ! .venv-sk13/bin/python -c "import sklearn, joblib, lz4; assert sklearn.__version__.startswith('1.3.')" 2>/dev/null; then
  .venv-sk13/bin/python -m pip install -q --upgrade pip
  # scikit-learn 1.3 wheels are built against numpy 1.x and do not import under numpy 2.
  .venv-sk13/bin/python -m pip install -q 'scikit-learn==1.3.*' 'numpy<2' joblib lz4
fi

if [ "${1:-}" = "--generate" ]; then
  out=${2:?usage: $0 --generate DIR}
  mkdir -p "$out"
  for venv in .venv .venv-sk13; do
    "$venv/bin/python" -W ignore fixtures/sklearn/generate.py "$out"
  done
fi
