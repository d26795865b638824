"""The local Hub-compatible server used by tests, the demo and offline work."""
