#!/usr/bin/env bash
# Creates the two Python environments the scikit-learn pickle parity tests need, idempotently:
#   .venv       the current scikit-learn (the project's main environment)
#   .venv-sk13  scikit-learn 1.3 side by side, to prove older pickles load too
# Usage: scripts/sklearn-venvs.sh [--regenerate]   (--regenerate also rewrites fixtures/sklearn)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

ensure_venv() { # dir, pip requirement...
  local dir=$1; shift
  if [ ! -x "$dir/bin/python" ]; then
    "$PY" -m venv "$dir"
  fi
  if ! "$dir/bin/python" -c "import sklearn, joblib" 2>/dev/null; then
    "$dir/bin/python" -m pip install --quiet --upgrade pip
    "$dir/bin/python" -m pip install --quiet "$@"
  fi
}

ensure_venv .venv scikit-learn joblib
# scikit-learn 1.3 wheels are built against numpy 1.x and do not import under numpy 2.
ensure_venv .venv-sk13 'scikit-learn==1.3.*' 'numpy<2' joblib lz4

if [ "${1:-}" = "--regenerate" ]; then
  for venv in .venv .venv-sk13; do
    "$venv/bin/python" fixtures/sklearn/generate.py fixtures/sklearn
  done
  .venv/bin/python fixtures/sklearn/malicious.py fixtures/sklearn/malicious
fi
