"""A Python ``http.server`` stand-in with the two knobs that decide whether it survives load."""
