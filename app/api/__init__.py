"""The HTTP API and Prometheus /metrics (api.listen, --listen): a front end beside the TUI
and the CLI, over the same FleetService. The only package that imports FastAPI, Starlette
and uvicorn; imported only when the API is asked for (its imports cost ~0.25 s)."""
