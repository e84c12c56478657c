"""The gateway's neutral vocabulary, below every other module: requests, results, errors, conversations, context."""
