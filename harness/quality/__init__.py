"""Quality tasks: data (corpus, synthetic long-range tasks, numbers to words) and metrics."""
