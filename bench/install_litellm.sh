#!/bin/sh
# Install LiteLLM proxy, the comparison point of bench/run.py, into its own virtualenv
# (bench/.venv-litellm, git-ignored), never into the project's .venv. Optional: bench/run.py
# finds it there and runs without it when it is missing. About a minute and ~1 GB of disk.
#   sh bench/install_litellm.sh                      # litellm[proxy]==1.106.2
#   LITELLM_VERSION=1.x.y PYTHON=python3.12 sh bench/install_litellm.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
version=${LITELLM_VERSION:-1.106.2}
python=${PYTHON:-python3}
venv="$here/.venv-litellm"
rm -rf "$venv"
"$python" -m venv "$venv"
# bounded: a stalled registry must not hang the caller (the benchmark runs without LiteLLM)
timeout 900 "$venv/bin/pip" install --quiet --disable-pip-version-check "litellm[proxy]==$version" || {
    echo "LiteLLM install failed: removing $venv (bench/run.py runs without it)" >&2
    rm -rf "$venv"
    exit 1
}
"$venv/bin/python" -c 'import importlib.metadata as m; print("installed litellm", m.version("litellm"), "in '"$venv"'")'
