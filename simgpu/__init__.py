"""simgpu: model GPU memory systems four ways (simulated, analytical, learned, measured)."""

__version__ = "0.1.0"
