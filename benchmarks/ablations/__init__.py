"""Ablation suites that reproduce the StyleGAN paper's Tables 2 and 3 and Fig. 5 (`nox -s ablations`).

`config` says what is trained and measured, `stick` with which networks, `run` trains and evaluates resumably,
`report` / `plots` / `figures` write the reports under `benchmarks/results/<suite>/`.
"""
