#!/usr/bin/env bash
# Creates the Python environment in .venv with everything the project needs.
#
# The environment (5 GB: torch is a CUDA build) is built once per set of requirements in
# a cache outside the clone (FPAR_VENV_CACHE, default ~/.cache/fpar-serve) and .venv
# links to it, so fresh clones and CI runs reuse it. A real .venv directory made by
# hand is respected and installed into instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
hash=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)

if [ -d .venv ] && [ ! -L .venv ]; then
  target=.venv
else
  cache=${FPAR_VENV_CACHE:-$HOME/.cache/fpar-serve}
  target="$cache/venv-$hash"
  mkdir -p "$cache"
fi

install() {
  if [ ! -x "$target/bin/python" ]; then
    "$PYTHON" -m venv "$target"
  fi
  # (this workplace's pip config names local indexes that print a warning per package)
  "$target/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt \
    -r requirements-dev.txt 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  touch "$target/.installed-$hash"
}

if [ ! -f "$target/.installed-$hash" ]; then
  echo "installing the environment into $target (first time only) ..."
  # one installer at a time per cache folder (parallel CI runs share it)
  exec 9>"$target.lock"
  flock 9
  [ -f "$target/.installed-$hash" ] || install
fi
[ "$target" = .venv ] || ln -sfn "$target" .venv
# the package itself, editable, for the `fpar` command: pointed at this checkout (clones share
# the environment, so the last one to run `make install` owns the command)
here=$PWD
if [ "$(cd / && "$here/.venv/bin/python" -c 'import cli, os; print(os.path.dirname(os.path.dirname(cli.__file__)))' \
      2>/dev/null)" != "$here" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
fi
touch "$target/.installed-$hash"  # newer than this script: make considers the install done

# environments of older requirements, unused for a day, are 5 GB each: drop them
if [ "$target" != .venv ]; then
  find "$(dirname "$target")" -maxdepth 1 -name 'venv-*' -type d ! -path "$target" -mtime +0 \
    -exec rm -rf {} + 2>/dev/null || true
fi
