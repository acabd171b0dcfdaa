"""The KFP v2 pipeline of issue 8 (components, definition, local helpers, timing rows)."""

__all__ = ["components", "definition", "local", "timing"]
