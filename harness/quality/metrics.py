"""Quality metrics from losses and predictions."""
from __future__ import annotations

import math


def perplexity(mean_nll: float) -> float:
    """exp of the mean negative log-likelihood (nats per token); inf once it overflows."""
    return math.exp(mean_nll) if mean_nll < 700 else math.inf


def bits_per_token(mean_nll: float) -> float:
    """Mean negative log-likelihood in bits (bits per character on a char corpus)."""
    return mean_nll / math.log(2)


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU (sacrebleu, 0..100) of whitespace-tokenised sentences."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none").score)


def exact_match(hypotheses: list[str], references: list[str]) -> float:
    return sum(h == r for h, r in zip(hypotheses, references)) / max(1, len(references))

