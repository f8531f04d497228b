"""The studies: their runner, and the models that several of them share.

* :mod:`simgpu.experiments.registry`: find the experiment files in ``experiments/`` (without
  importing them), as :mod:`simgpu.devices.registry` finds the device files;
* :mod:`simgpu.experiments.runner`: the experiment contract and its runner (one results folder
  per configuration, finished points kept, reruns resume);
* :mod:`simgpu.experiments.decode`: a transformer decode step in closed form (long-context and
  what-if studies);
* :mod:`simgpu.experiments.placement`: a workload placed on a GPU, a PIM or a dataflow device
  (PIM and dataflow studies);
* :mod:`simgpu.experiments.cli`: ``simgpu experiment list | run``.

Importing this package imports nothing else; each module loads what it needs.
"""
