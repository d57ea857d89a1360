"""Translation: an encoder-decoder with attention (see :mod:`seqmodels.kinds.translate.kind`)."""

from seqmodels.kinds.translate.kind import TranslateKind

KIND = TranslateKind()
