"""MNIST with SGHMC: Table 4's recipe with the SGLD sampler replaced by SGHMC.

Run: python -m jebm.main --config=configs/mnist_sghmc.py[:preset,...] --workdir=/tmp/mnist_sghmc

The paper trains MNIST only with SGLD ("given the difficulty of tuning SGHMC when
training on MNIST dataset, I decided to focus on SGLD") and gives no SGHMC
hyperparameters for it. Everything except the sampler is Table 4, exactly as in
configs/mnist_sgld.py (custom CNN, Adam lr 1e-4, weight decay 1e-4, batch 64,
10 epochs, L = 1000, images in [−1, 1] with chains from U(−1, 1), quadratic head,
1,000 fresh chains scored against 1,000 test digits).

The sampler values are a STARTING POINT derived from the SGLD recipe, not tuned and
not from the paper. SGHMC (symplectic Euler, M = m·I) with step η and friction C
behaves, on time scales longer than its momentum memory m/(ηC) steps, like SGLD
with step η/C (its overdamped limit; for C = m/η it is exactly SGLD with step
η²/m). So the defaults keep Table 4's SGLD step, η/C = 5e-6, and give the momentum
a memory of 10 steps:

  m = 1, η = 7.07e-4, C = 141.4   (η/C = 5e-6, m/(ηC) = 10)

which also keeps the stability limit near SGLD's: symplectic Euler is stable while
η²k < 4m − 2ηC, i.e. for curvatures k up to 7.6e6 (SGLD at η = 5e-6: 4e5).

Presets (comma-separated, applied in order): as in configs/mnist_sgld.py,
  quadratic  (default) noise-initialised chains, quadratic head
  vanilla    noise-initialised chains, linear head
  pcd        persistent chains (a bank of 10,000), linear head
  cpu        mnist_sgld's cpu_bank10k recipe (bounds [−1, 1], PCD bank of 10,000 with 5%
             re-initialisation, L = 40, lr 2e-4, 1,500 steps) with the same rule: η/C = 2e-4 (the SGLD
             cpu step), memory 10 steps, i.e. η = 4.47e-3, C = 22.4. Not run beyond
             the smoke test at lr 2e-4; cpu_lr5e4 is the one measured
  cpu_lr5e4  the same on mnist_sgld's cpu_lr5e4 (lr 5e-4): the sweep's SGHMC rows
             (experiments/results/mnist_sweep.md; docs/reproductions.md)
  cpu_shortrun  the same on mnist_sgld's cpu_shortrun (noise-initialised chains, no bounds)
  smoke      a seconds-long run for tests
"""

import math

from jebm import config_lib
from jebm.configs import mnist_sgld

# Momentum memory m/(ηC), in sampler steps, of both the default and the cpu recipe.
MEMORY_STEPS = 10.0


def set_sghmc(c, langevin_step: float, mass: float = 1.0, memory_steps: float = MEMORY_STEPS):
    """Sets η and C so that η/C = ``langevin_step`` and m/(ηC) = ``memory_steps``."""
    # With h = η/C, C = η/h, so m/(ηC) = m·h/η² = T gives η = sqrt(h·m/T).
    eta = math.sqrt(langevin_step * mass / memory_steps)
    c.sampler.step_size = eta
    c.sampler.friction = eta / langevin_step
    c.sampler.mass = mass


def cpu(c):
    mnist_sgld.cpu_bank10k(c)
    set_sghmc(c, langevin_step=2e-4)


def cpu_lr5e4(c):
    mnist_sgld.cpu_lr5e4(c)
    set_sghmc(c, langevin_step=2e-4)


def cpu_shortrun(c):
    mnist_sgld.cpu_shortrun(c)
    set_sghmc(c, langevin_step=2e-4)


PRESETS = {
    "cpu": cpu, "cpu_lr5e4": cpu_lr5e4, "cpu_shortrun": cpu_shortrun, **mnist_sgld.FIGURE_4, "smoke": mnist_sgld.smoke,
}


def get_config(arg=None):
    c = config_lib.base_config()
    mnist_sgld.base(c)
    c.sampler.name = "sghmc"
    c.sampler.num_steps = 1000
    c.sampler.mass_convention = "mass"
    c.sampler.integrator = "symplectic_euler"
    c.sampler.momentum_init = "random"
    set_sghmc(c, langevin_step=5e-6)
    mnist_sgld.quadratic(c)
    return config_lib.apply_presets(c, arg, PRESETS)
