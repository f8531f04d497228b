"""Calibration against a local GPU: CuPy microbenchmarks, NVML power, run datasets, fitting.

Importing this package is free: CuPy and NVML are imported by the functions that use them.
"""
