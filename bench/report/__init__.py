"""Reports regenerated from result CSVs: tables (pure), figures (matplotlib Agg), documents.

Import the submodules directly (``bench.report.build``, ``.tables``, ``.figures``); this
package stays empty so that importing the pure tables never pulls in matplotlib.
"""

__all__: list[str] = []
