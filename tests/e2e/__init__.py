"""End to end over every package: ``python -m bench run``, report and compare as a user runs them; SIGKILL of
the whole tree."""
