"""One module per upstream provider, the contract they share (base), their capabilities and registry."""
