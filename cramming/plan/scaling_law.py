"""Expected MLM loss of a model of N parameters trained on D tokens: L = E + A/N^alpha + B/D^beta.

The form is the Chinchilla law (Hoffmann et al., 2022, eq. 2): an irreducible loss E, a term
that shrinks with model size and one that shrinks with data. N counts the transformer blocks
only (Kaplan et al., 2020: non-embedding parameters give the cleaner law); D counts all tokens
the model saw, masked or not. Larger models reach a given loss in fewer tokens ("Train Large,
Then Compress", Li et al., 2020), and the law captures that through the A/N^alpha term.

The constants are fitted by `bench/scaling.py` from the project's own short CPU runs and stored
in `scaling_law.json` beside this module, with the range of N and D they were fitted on. Anything
outside that range is an extrapolation, and the planner says so.

Short CPU runs barely leave the unigram plateau of MLM training, where every model predicts token
frequencies whatever its size: they pin down the loss level and how it falls with tokens, but
not how it falls with N. So the shipped fit is a maximum a-posteriori fit: the runs' residuals
plus a Gaussian prior on the four shape constants centred on Chinchilla's published fit
(`CHINCHILLA`). Where the runs carry information they win; where they carry none (the N term)
the published law fills in. The unconstrained fit is stored beside it for comparison.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from crambench.contracts import read_contract

LAW_FILE = Path(__file__).with_name("scaling_law.json")
LAW_FORMAT = "cram-loss-law/1"


# Hoffmann et al. 2022 ("Chinchilla"), eq. 10: E = 1.69, A = 406.4, B = 410.7, alpha = 0.34,
# beta = 0.28. Prior widths: exponents +-0.1 (about the spread between the paper's three
# estimation approaches, N_opt ~ C^0.46..0.50); A and B a factor e either way.
CHINCHILLA = {"A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28}
PRIOR_SIGMA = {"log_A": 1.0, "alpha": 0.1, "log_B": 1.0, "beta": 0.1}


@dataclass(frozen=True)
class LossLaw:
    E: float  # irreducible loss, nats per masked token
    A: float
    alpha: float  # exponent of N (block parameters)
    B: float
    beta: float  # exponent of D (tokens seen)
    fit: dict = field(default_factory=dict, compare=False)  # range, residuals, provenance

    def loss(self, n_params, tokens):
        n, d = np.asarray(n_params, float), np.asarray(tokens, float)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    def extrapolation(self, n_params: float, tokens: float) -> dict:
        """How far (factor) beyond the fitted range N and D lie; 1.0 means inside."""
        n_lo, n_hi = self.fit.get("n_range", (n_params, n_params))
        d_lo, d_hi = self.fit.get("d_range", (tokens, tokens))
        return {
            "n_factor": max(n_params / n_hi, n_lo / n_params, 1.0),
            "d_factor": max(tokens / d_hi, d_lo / tokens, 1.0),
        }

    def optimal_size_exponent(self) -> float:
        """N_opt grows as C^(beta/(alpha+beta)) at fixed compute C ~ 6ND (Chinchilla eq. 4)."""
        return self.beta / (self.alpha + self.beta)

    def to_dict(self) -> dict:
        return {"format": LAW_FORMAT, **asdict(self)}


def fit_loss_law(n_params, tokens, losses, *, prior: dict | None = None,
                 loss_noise: float = 0.05, seed_grid: int = 4) -> LossLaw:
    """Fit E, A, alpha, B, beta by robust least squares on the loss, from a grid of starts.

    The objective has many shallow valleys (A and alpha trade off), so like Hoffmann et al. we
    start from a grid of initial points and keep the best; a soft-L1 loss on the runs keeps one
    odd run (a noisy CPU timing, a diverged step) from dragging the fit. With `prior` ({"A",
    "alpha", "B", "beta"}, widths from PRIOR_SIGMA) each constant's distance from the prior, in
    prior standard deviations, joins the residuals scaled by `loss_noise` (the runs' loss noise in
    nats): the maximum a-posteriori fit under Gaussian noise and a Gaussian prior.
    """
    from scipy.optimize import least_squares

    n = np.asarray(n_params, float)
    d = np.asarray(tokens, float)
    y = np.asarray(losses, float)
    if not (len(n) == len(d) == len(y)) or len(y) < 6:
        raise ValueError(f"need at least 6 (N, D, loss) runs to fit 5 constants, got {len(y)}")

    def data_residual(p):
        e, log_a, alpha, log_b, beta = p
        return e + np.exp(log_a - alpha * np.log(n)) + np.exp(log_b - beta * np.log(d)) - y

    def robust(r):
        # soft_l1 on the runs only (scipy's `loss=` would also soften the prior): quadratic
        # within `loss_noise`, linear beyond, so one odd run cannot drag the fit.
        z = r / loss_noise
        return loss_noise * np.sign(r) * np.sqrt(2 * (np.sqrt(1 + z * z) - 1))

    if prior is None:
        def residual(p):
            return robust(data_residual(p))
    else:
        centre = np.array([math.log(prior["A"]), prior["alpha"], math.log(prior["B"]),
                           prior["beta"]])
        sigma = np.array([PRIOR_SIGMA[k] for k in ("log_A", "alpha", "log_B", "beta")])

        def residual(p):
            return np.concatenate([robust(data_residual(p)), loss_noise * (p[1:] - centre) / sigma])

    lower = (0.0, -10.0, 0.01, -10.0, 0.01)
    upper = (float(y.min()), 40.0, 2.0, 40.0, 2.0)
    best = None
    exponents = np.linspace(0.1, 0.8, seed_grid)
    for alpha0, beta0 in itertools.product(exponents, exponents):
        e0 = 0.5 * float(y.min())
        # Start A and B so each term carries half of the reducible loss at the median run.
        half = max(float(np.median(y)) - e0, 1e-3) / 2
        log_a0 = math.log(half) + alpha0 * float(np.median(np.log(n)))
        log_b0 = math.log(half) + beta0 * float(np.median(np.log(d)))
        start = np.clip((e0, log_a0, alpha0, log_b0, beta0), lower, upper)
        result = least_squares(residual, start, bounds=(lower, upper), max_nfev=5000)
        if best is None or result.cost < best.cost:
            best = result
    e, log_a, alpha, log_b, beta = (float(v) for v in best.x)
    res = data_residual(best.x)
    return LossLaw(
        E=e, A=math.exp(log_a), alpha=alpha, B=math.exp(log_b), beta=beta,
        fit={
            "runs": int(len(y)),
            "n_range": [float(n.min()), float(n.max())],
            "d_range": [float(d.min()), float(d.max())],
            "loss_range": [float(y.min()), float(y.max())],
            "rms_residual": float(np.sqrt(np.mean(res**2))),
            "max_abs_residual": float(np.max(np.abs(res))),
            "prior": None if prior is None else {"centre": prior, "sigma": PRIOR_SIGMA,
                                                 "loss_noise": loss_noise},
        },
    )


def load_loss_law(path: str | Path = LAW_FILE) -> LossLaw:
    data = read_contract(path, LAW_FORMAT)  # bench/scaling.py writes it
    return LossLaw(**{k: data[k] for k in ("E", "A", "alpha", "B", "beta", "fit")})
