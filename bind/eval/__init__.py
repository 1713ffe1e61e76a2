"""Evaluation: zero-shot classification and retrieval tasks (``bind eval``), their metrics, and the MTEB
adapter (``bind.eval.mteb``)."""
