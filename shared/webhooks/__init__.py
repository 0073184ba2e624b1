"""The webhook path: job events, signing and secrets, URL safety, delivery records and the delivery worker."""
