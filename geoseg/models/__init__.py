"""Models: architectures, self-describing cards and the embedded land-cover models.

Import from the submodules (``geoseg.models.card``, ``geoseg.models.loading``); this package
imports nothing heavy itself, so ``geoseg.io`` can use the card without a cycle.
"""
