"""RNN models; each has a config dataclass that is saved beside its state_dict."""
