#!/usr/bin/env bash
# Download (here, with network) the wheels that the GPU machine lacks into .whl/ (git-ignored by
# .gitignore), for Python 3.12 on x86-64. The GPU image has torch, numpy, scipy, tifffile,
# h5py, pyyaml, tqdm and matplotlib; it has no pydantic.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl pydantic==2.14.3 pydantic_core==2.50.4 annotated_types==0.8.0 typing_inspection==0.4.5
ls .whl
