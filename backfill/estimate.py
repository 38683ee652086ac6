"""What a uniform random sample shows about the whole collection: an exact (Clopper-
Pearson) upper bound on the share of invalid items.

With `invalid` of `sampled` items invalid, the bound is the share p at which seeing
`invalid` or fewer would happen with probability 1 - confidence: any larger share would
make the sample this good less likely than that. Sampling without replacement from a
finite collection only narrows the truth, so the binomial bound is a safe one. Pure
arithmetic: no I/O, no third-party imports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CONFIDENCE = 0.95


def binomial_cdf(successes: int, trials: int, p: float) -> float:
    """P(X <= successes) for X ~ Binomial(trials, p)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if successes >= trials else 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for k in range(successes + 1):
        log_term = (math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1)
                    + k * log_p + (trials - k) * log_q)
        total += math.exp(log_term)
    return min(1.0, total)


def invalid_upper_bound(invalid: int, sampled: int, confidence: float = CONFIDENCE) -> float:
    """The exact one-sided upper bound on the invalid share, at `confidence`."""
    if not 0 <= invalid <= sampled:
        raise ValueError("invalid must be between 0 and sampled")
    if sampled == 0 or invalid == sampled:
        return 1.0
    if invalid == 0:  # the closed form of the same bound
        return 1.0 - math.pow(1.0 - confidence, 1.0 / sampled)
    low, high = invalid / sampled, 1.0
    for _ in range(100):  # the CDF falls as p grows: bisect for CDF(p) = 1 - confidence
        middle = (low + high) / 2
        if binomial_cdf(invalid, sampled, middle) > 1.0 - confidence:
            low = middle
        else:
            high = middle
    return high


@dataclass(frozen=True)
class Estimate:
    invalid: int
    sampled: int
    total: int  # items in the collection
    confidence: float = CONFIDENCE

    @property
    def upper_share(self) -> float:
        return invalid_upper_bound(self.invalid, self.sampled, self.confidence)

    @property
    def upper_items(self) -> int:
        """At most this many items of the collection are invalid (at that confidence)."""
        return min(self.total, math.ceil(self.upper_share * self.total - 1e-9))

    def sentence(self) -> str:
        return (f"{self.invalid} invalid of {self.sampled:,} sampled: at most "
                f"{100 * self.upper_share:.1f}% of the {self.total:,} items are invalid "
                f"({100 * self.confidence:.0f}% confidence)")

    def to_dict(self) -> dict[str, float | int]:
        return {"invalid": self.invalid, "sampled": self.sampled, "total": self.total,
                "confidence": self.confidence, "invalid_share_at_most": self.upper_share,
                "invalid_items_at_most": self.upper_items}
