"""Sequence tagging (NER / POS): corpus readers, a linear-chain CRF and entity-level metrics.

Modules, imported explicitly so that reading a corpus never pulls in torch:

- :mod:`seqmodels.tagging.readers` -- CoNLL-2003, CoNLL-U, Kaggle GMB CSV and two-column TSV readers, BIO checks.
- :mod:`seqmodels.tagging.crf` -- batched linear-chain CRF with BIO transition constraints.
- :mod:`seqmodels.tagging.metrics` -- conlleval-style entity precision / recall / F1, token accuracy, per-tag tables.
"""
