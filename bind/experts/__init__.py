"""Experts: modality inference, encoder cards, the registry, the encoder contract, the shared instance
pool, the engine that runs them (``runner``), ``bind.embed`` (``api``) and the feature cache."""
