"""seqmodels: the seqflow library of readers, text cleaning, vocabularies, RNN models and training.

It depends on torch, numpy, pandas, pyarrow and nltk only; orchestration (Prefect) and tracking
(MLflow) live in ``tasks/`` and ``flows/``.
"""

__version__ = "0.1.0"
