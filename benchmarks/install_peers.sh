#!/usr/bin/env bash
# Install the peer libraries the benchmarks compare against, without pulling a CUDA torch
# or torchvision: pip's constraints pin torch to the installed build; zennit, grad-cam and
# quantus declare torchvision (or an open torch range) and are installed with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -c constraints.txt -e ".[bench,scale]"
python -m pip install --no-deps zennit grad-cam quantus
# tint (time-interpret) and the three packages its tint.attr imports; each with --no-deps
python -m pip install -c constraints.txt --no-deps time-interpret pytorch-lightning lightning-utilities torchmetrics
# LXT (the AttnLRP reference of bench_transformer); it declares torchvision-pulling packages
python -m pip install -c constraints.txt --no-deps lxt
