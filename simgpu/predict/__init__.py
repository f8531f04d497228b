"""Learned GEMM runtime and power: datasets, features, random forests, evaluation."""
