"""`cram pretrain`: a crammed BERT trained to a wall-clock budget (contract 2, the run dir).

    pretrain.py    set-up and the training loop (one optimizer step per iteration)
    budget.py      the clock: parse `24h`, fraction(), would_overrun()
    stop.py        when to stop: deadline, signals, non-finite losses, agreed by all ranks
    rows.py        each rank's share of every global batch, in one process's order
    distributed.py DDP ranks under torchrun, and the `--nproc` launcher
    schedules.py   learning rate and batch size as functions of elapsed / budget
    objective.py   MLM masking (25%, 80/10/10)
    checkpoint.py  resumable state in RUN/checkpoint/
    run_dir.py     creating or reopening a run dir, metrics.jsonl, summary.json
    summary.py     the end of a run: final/, val loss, summary
    hardware.py    device, precision and the track label (from cramming.rules)
    progress.py    the progress bar and metrics records
    command.py     the `cram pretrain` arguments

Other stages use the names `cramming` exports (pretrain, parse_budget, Budget,
detect_hardware); this package imports nothing itself, so `cramming.train.budget` loads no torch.
"""
