"""Reference PyTorch Lightning training that produces the logs in ``sample_runs/``.

Needs the ``train`` extra (``pip install -e '.[train]'``); the exporter itself never
imports this package, torch or Lightning.
"""
