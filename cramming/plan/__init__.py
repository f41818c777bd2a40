"""`cram plan`: size a BERT to a budget and a GPU by the loss it is expected to reach.

    planner.py         candidate shapes, ranking, the table and the preset it writes
    speed_law.py       tokens/s of a shape (the "How big should my language model be?" law)
    scaling_law.py     loss from parameters and tokens, fitted to the project's own runs
    scaling_law.json   the fitted loss law (bench/scaling.py writes it)
    gpus.py            per-GPU memory, peak FLOP/s and derived speed-law constants
    memory.py          training memory of a shape, tensor by tensor
    command.py         the `cram plan` arguments

This package imports nothing itself: `cram plan` loads `planner` (and SciPy) only when run.
"""
