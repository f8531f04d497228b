"""Validation: hold the simulated, analytical and learned views against measured runs.

:func:`.core.validate_run` compares a calibration run with the views; :mod:`.families` says
which workload each measured row is. The package itself imports nothing, so that ``simgpu``
starts without the views' dependencies.
"""
