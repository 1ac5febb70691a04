"""The scripts that produced ``experiments/results/``: each is runnable, from the repository root, as

    python -m experiments.NAME [flags]      # or, as the results files record: python experiments/NAME.py

``_common`` holds what they share (config loading, the results files' findings and
environment line), ``runner`` the training runs they drive through the CLI (train or
reuse a workdir, read it back, merge with an earlier results file).
"""
