"""jebm's speed benchmark: ``python -m benchmarks.run --out DIR`` (see README.md).

Not a unit test: it times jebm's samplers on the paper's custom CNN and the
2D toy against PyTorch eager, BlackJAX and the bare energy gradient, all in
one process, and writes ``DIR/results.json`` and ``DIR/results.md``.
"""
