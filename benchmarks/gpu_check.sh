#!/usr/bin/env bash
# jebm's benchmark on a machine with one NVIDIA GPU, in under 8 minutes.
#
#   bash benchmarks/gpu_check.sh            # from anywhere; results in $OUT/gpu or benchmarks/results/gpu
#
# The GPU machine has no network: nothing is downloaded here.
#
# * Wheels: if a `.whl/` folder at the repository root holds wheels, they are
#   installed with `pip install --no-index --find-links .whl` into a venv
#   (.venv-gpu, which also sees the machine's own site-packages). Fill it on
#   a machine with network access and the GPU machine's Python version and
#   architecture, e.g.
#       pip download -d .whl "jax[cuda12]==0.10.2" flax==0.12.8 optax==0.2.8 \
#           scipy blackjax==1.7.1
#   (`jax[cuda13]` for a CUDA 13 stack; add a CUDA build of torch==2.13.0 for
#   the PyTorch rows). `.whl/` is git-ignored: send it along by hand (the
#   CUDA wheels are several hundred MB).
# * Without `.whl/`, or when an install fails, whatever jax is installed on the
#   machine is used. If that jax has no GPU backend the benchmark still runs,
#   on CPU, and says so.
# * jebm itself is not installed: src/ is put on PYTHONPATH.
# * Environment: GPU_CHECK_BUDGET_S (seconds for everything, default 450),
#   PYTHON (interpreter for the venv, default python3), GPU_CHECK_VENV (use
#   this existing venv instead of making one), GPU_CHECK_SMOKE=1 (tiny sizes
#   only: to try the script on a machine without a GPU), OUT (results go to
#   $OUT/gpu, default benchmarks/results/gpu).
#
# What runs: `python -m benchmarks.run --quick` (batch 64 and the toy
# iteration; about a minute on a GPU), then the full benchmark (batches 64,
# 256, 1024 and the levers; the XLA CPU flag lever is skipped off-CPU) under
# `timeout` with what is left of the time budget (GPU_CHECK_BUDGET_S, 450 s
# by default, leaving margin under 8 minutes). Each writes results.json and
# results.md, which are printed at the end.
set -uo pipefail

cd "$(dirname "$0")/.."
START=$SECONDS
BUDGET_S=${GPU_CHECK_BUDGET_S:-450}
RESULTS=${OUT:-benchmarks/results}/gpu
PYTHON=${PYTHON:-python3}

elapsed() { echo $((SECONDS - START)); }
say() { echo "[gpu_check $(elapsed)s] $*"; }

say "machine: $(nproc) cores; GPU:"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
  || say "nvidia-smi not found"

# A venv that also sees the machine's packages, so the fallback jax is there;
# outside the repository, so nothing here needs ignoring.
VENV=${GPU_CHECK_VENV:-${TMPDIR:-/tmp}/jebm-gpu-venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv --system-site-packages "$VENV" || { say "cannot create a venv"; exit 1; }
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"

if compgen -G ".whl/*.whl" >/dev/null; then
  say "installing from .whl/ (no index)"
  if compgen -G ".whl/jax_cuda13_plugin*.whl" >/dev/null; then JAX_REQ="jax[cuda13]"; else JAX_REQ="jax[cuda12]"; fi
  # One at a time: a package missing from .whl/ must not block the others.
  for req in "$JAX_REQ" flax optax scipy blackjax torch; do
    if compgen -G ".whl/$(echo "${req%%[*}" | tr - _)-*.whl" >/dev/null; then
      pip install --quiet --disable-pip-version-check --no-index --find-links .whl "$req" \
        || say "could not install $req from .whl/; keeping what is installed"
    fi
  done
else
  say "no .whl/ folder: using the jax installed on this machine"
fi

export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Allocate GPU memory as needed, so PyTorch can share the GPU and the peak
# memory columns mean something.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

if ! python -c "import jax, flax, optax" 2>/dev/null; then
  say "jax, flax and optax must be importable (put their wheels in .whl/); stopping"
  exit 1
fi
python - <<'EOF'
import jax
print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
if jax.default_backend() != "gpu":
    print("WARNING: this jax has no GPU backend; the benchmark runs on CPU")
EOF

if [ "${GPU_CHECK_SMOKE:-0}" = 1 ]; then
  say "smoke benchmark -> $RESULTS/quick"
  python -m benchmarks.run --smoke --out "$RESULTS/quick"
else
  say "quick benchmark -> $RESULTS/quick"
  python -m benchmarks.run --quick --out "$RESULTS/quick"
fi
QUICK_RC=$?

LEFT=$((BUDGET_S - $(elapsed)))
if [ "${GPU_CHECK_SMOKE:-0}" = 1 ]; then
  say "smoke run: full benchmark skipped"
elif [ "$LEFT" -gt 60 ]; then
  say "full benchmark with ${LEFT}s left -> $RESULTS/full"
  timeout --signal=INT --kill-after=10 "$LEFT" python -m benchmarks.run --out "$RESULTS/full"
  FULL_RC=$?
  [ "$FULL_RC" -eq 0 ] || say "full benchmark stopped (exit $FULL_RC): out of time or failed; quick results stand"
else
  say "only ${LEFT}s left: full benchmark skipped"
fi

for f in "$RESULTS/quick/results.md" "$RESULTS/full/results.md"; do
  if [ -f "$f" ]; then
    echo
    echo "=================== $f"
    cat "$f"
  fi
done
say "done"
exit "$QUICK_RC"
