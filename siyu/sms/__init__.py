"""SMS delivery: one adapter interface for real providers, and a local simulator."""
