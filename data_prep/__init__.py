"""Corpora in, a prepared data dir out (contract `cram-data/1`)."""

from data_prep.errors import UserError

__all__ = ["UserError"]
