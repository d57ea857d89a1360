"""Sequence tagging (a tag per token: NER, POS) as a task kind: ``KIND`` is what the registry loads."""

from seqmodels.kinds.tag.kind import TagKind

KIND = TagKind()
