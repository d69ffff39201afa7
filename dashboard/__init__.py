"""FastAPI control plane and dashboard: REST API, live feeds, auth, metrics and the page."""
