"""HTTP API shell (FastAPI). Routes arrive with the API issue; the core stays in switchyard/."""
