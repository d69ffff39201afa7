"""Field types every contract shares (ids, free text); its own module so that `bus.rulespec`
and `bus.contracts` can both use them without importing each other."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
EntityId = Annotated[str, Field(pattern=ID_PATTERN, description="letters, digits, _ . -; up to 64")]

# C0 control characters other than tab, newline and carriage return, and DEL. NUL in particular:
# PostgreSQL refuses it in text and JSON, so a name holding one would be stored nowhere.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def no_control_chars(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (NUL and the like)")
    return value


Text = Annotated[str, AfterValidator(no_control_chars)]
