"""Generation: a character-level language model (see :mod:`seqmodels.kinds.generate.kind`)."""

from seqmodels.kinds.generate.kind import GenerateKind

KIND = GenerateKind()
