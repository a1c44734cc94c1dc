"""Training of StyleGAN, StyleGAN2 and the traditional baseline: losses and regularisers (`losses`), the generator
average (`ema`), schedules (`schedule`), the loop and its phases (`loop`), resumable state (`state`), statistics
(`stats`) and multi-process helpers (`distributed`). `sgmodels train` (sgmodels.commands.train) is the CLI.

Import the submodules directly; this package imports nothing heavy on its own.
"""
