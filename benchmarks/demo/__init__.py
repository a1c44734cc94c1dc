"""The README's main job: one offline command (`nox -s demo`, i.e. `python -m benchmarks.demo`) that builds the data,
trains StyleGAN2 (or StyleGAN) cpu32 on the CPU, trains the project's measuring stick, measures every snapshot and
writes a report with figures and plots. See benchmarks/demo/cli.py for the steps and options."""
