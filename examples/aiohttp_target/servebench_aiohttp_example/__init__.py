"""Example servebench target adapter: an aiohttp server around the TorchScript model.

See docs/adding-a-target.md in servebench: ``server.py`` is the serving software,
``target.py`` the adapter that starts it and speaks its wire format.
"""

__all__: list[str] = []
