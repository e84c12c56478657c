"""Client keys: the record every request is authenticated as, its limits, where keys are kept, a short cache."""
