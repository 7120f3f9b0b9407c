#!/bin/sh
# Build and install respy. The Dockerfile runs these exact commands, and so does
# tests/test_deploy_image.py, so what the test proves about the install holds for the image.
#
#   sh docker/install.sh wheels SRC_DIR WHEEL_DIR   respy's wheel plus one wheel per dependency
#   sh docker/install.sh venv WHEEL_DIR VENV_DIR    a new virtual environment from those wheels, offline;
#                                                    bytecode compiled now (the image's root filesystem
#                                                    is read-only), pip and test suites left out
# PYTHON picks the interpreter (default python3).
set -eu

python=${PYTHON:-python3}

wheels() {
    "$python" -m pip wheel --quiet --wheel-dir "$2" "$1"
}

venv() {
    "$python" -m venv "$2"
    "$2/bin/python" -m pip install --quiet --no-index --no-compile --find-links "$1" respy
    "$2/bin/python" -m pip uninstall --quiet --yes pip setuptools 2>/dev/null || true
    # Test suites of numpy and scipy are a fifth of the environment and never imported at run time.
    find "$2/lib" -depth -type d -name tests -path "*/site-packages/*" -exec rm -rf {} +
    # unchecked-hash: the .pyc files stay valid whatever the sources' timestamps become after COPY.
    "$2/bin/python" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$2/lib" >/dev/null
}

case "${1:-}" in
    wheels) wheels "$2" "$3" ;;
    venv) venv "$2" "$3" ;;
    *) echo "usage: install.sh wheels SRC_DIR WHEEL_DIR | venv WHEEL_DIR VENV_DIR" >&2; exit 2 ;;
esac
