"""Masking evaluation: a seeded corpus of planted secrets/PII and hard negatives, streamed through a real gateway.

    python -m bench.masking_eval.run [--quick] [--seeds 5] [--out results.json]

See bench/README.md ("Masking evaluation") for what is measured.
"""
