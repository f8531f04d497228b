"""Rules of the hardware that every view applies alike.

The analytical model and the simulator answer from the same rules, so that they can only differ
in what they model, not in how they count: which sectors a warp's global access touches and how
many shared-memory wavefronts it takes (:mod:`.coalesce`). Nothing here imports a view.
"""
