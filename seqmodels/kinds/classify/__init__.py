"""Classification (text -> label) as a task kind: ``KIND`` is what the registry loads."""

from seqmodels.kinds.classify.kind import ClassifyKind

KIND = ClassifyKind()
