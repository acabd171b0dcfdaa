"""servebench package."""
