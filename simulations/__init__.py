"""City simulations: scripted rides over the real HTTP API."""
