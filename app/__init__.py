"""The composition root: the FastAPI app, its dependencies, the CLI and the worker wiring."""
