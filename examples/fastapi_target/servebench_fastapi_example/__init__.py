"""Example servebench target adapter: FastAPI + uvicorn around the TorchScript model.

See docs/adding-a-target.md in servebench: ``server.py`` is the serving software,
``target.py`` the adapter (about 30 lines on :class:`targets.LocalServerTarget`).
"""

__all__: list[str] = []
