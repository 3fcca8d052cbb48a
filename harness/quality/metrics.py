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


def rouge(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F1 (rouge-score, 0..1) over sentence pairs."""
    from rouge_score import rouge_scorer

    kinds = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(kinds))
    scores = [scorer.score(r, h) for h, r in zip(hypotheses, references)]
    return {kind: sum(s[kind].fmeasure for s in scores) / max(1, len(scores)) for kind in kinds}


def exact_match(hypotheses: list[str], references: list[str]) -> float:
    return sum(h == r for h, r in zip(hypotheses, references)) / max(1, len(references))

