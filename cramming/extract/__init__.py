"""`cram extract`: a smaller BERT extracted from a trained one and distilled (Bort).

    space.py      the candidate shapes: sub-shapes of the teacher, default grid, --space
    slicing.py    a candidate's starting weights: the teacher's layers and units it keeps
    distill.py    the objective: MLM plus temperature-scaled KL to the teacher (Hinton 2015)
    measure.py    parameters, FLOPs per token, latency at batch 1 and 64 on this device
    ranking.py    the W-coefficient and the Pareto front (torch-free)
    extract.py    the job: search, choose, keep training, write the run dir and search.json
    command.py    the `cram extract` arguments

Imports nothing itself: `ranking` is read by the torch-free validator.
"""
