"""The four views of a workload: measured, simulated, analytical, learned.

- :mod:`.protocol`: ``estimate(view, workload, device) -> Estimate``, the one way to ask a view;
- :mod:`.estimate`: :class:`~.estimate.Estimate`, what a view answers;
- :mod:`.measured`: the measured view (calibration rows, live measurement);
- :mod:`.compare`: one workload, four views, one table (``simgpu compare``);
- :mod:`.cli`: the ``compare`` command's arguments;
- :mod:`.simulate`: the ``simulate`` command (a workload or a trace on the simulator, or a PIM or
  dataflow device).

The package itself imports nothing, so that ``simgpu`` starts without the views' dependencies.
"""
