"""What requests cost and did: per-request spend, the usage ledger, and reports over it."""
