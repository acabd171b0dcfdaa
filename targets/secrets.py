"""Tells which settings of a target name environment variables that hold secrets.

Why a declaration instead of a list in servebench: redaction (:mod:`ground.redactor`) must
cover every credential a target is configured with, including those of an adapter a user
adds without editing servebench.  So the adapter's own ``Settings`` dataclass says which
of its fields name secret-holding environment variables:

* by convention, every field whose name ends in ``_env`` (``bearer_token_env``,
  ``cookie_env``, ``kfp_token_env``, ``kfp_cookie_env``, ``api_key_env``, ...): the table
  holds the variable's NAME, the variable holds the secret -- the rule servebench already
  keeps (``bench.results.header.scrub`` records ``*_env`` names and drops secret-looking keys);
* explicitly, for a field named otherwise: a class attribute
  ``secret_env_fields: ClassVar[tuple[str, ...]] = ("auth_variable",)`` on the Settings.

Values are read elsewhere (``bench.redact_secrets`` for the whole configuration,
:func:`targets.remote.open_remote` for one target); this module only reads names.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["SECRET_ENV_SUFFIX", "read_secret_values", "secret_env_fields", "secret_env_names"]

#: Settings fields ending in this name an environment variable that holds a secret.
SECRET_ENV_SUFFIX = "_env"


def secret_env_fields(settings_cls: Any) -> tuple[str, ...]:
    """Names of the fields of ``settings_cls`` that name secret-holding variables.

    Fields ending in :data:`SECRET_ENV_SUFFIX`, then those listed in the class attribute
    ``secret_env_fields`` (an unknown name there is an error: a typo would leak silently).
    """
    if not dataclasses.is_dataclass(settings_cls):
        return ()
    names = [f.name for f in dataclasses.fields(settings_cls) if f.name.endswith(SECRET_ENV_SUFFIX)]
    declared = getattr(settings_cls, "secret_env_fields", ())
    if isinstance(declared, str):
        declared = (declared,)
    known = {f.name for f in dataclasses.fields(settings_cls)}
    for name in declared:
        if name not in known:
            raise ValueError(
                f"{getattr(settings_cls, '__name__', settings_cls)}.secret_env_fields names "
                f"{name!r}, which is not one of its fields"
            )
        names.append(name)
    return tuple(dict.fromkeys(names))


def secret_env_names(settings: Any) -> dict[str, str]:
    """Field -> environment variable NAME for every secret field set in ``settings`` ("" = unset)."""
    names: dict[str, str] = {}
    for field_name in secret_env_fields(type(settings)):
        value = getattr(settings, field_name, "")
        if isinstance(value, str) and value:
            names[field_name] = value
    return names


def read_secret_values(variables: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variable NAME -> value for each variable that is set and non-empty (unset ones are skipped)."""
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    for name in variables:
        value = env.get(name, "")
        if value:
            values[name] = value
    return values
