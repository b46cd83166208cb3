"""The value types every params schema is written in (strict: "5" is not an int, "yes" not a flag)."""
from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, Strict

Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]        # strict floats still take ints (1 -> 1.0)
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
Positive = Annotated[Int, Field(ge=1)]
NonNegative = Annotated[Int, Field(ge=0)]
NonEmpty = Annotated[Str, Field(min_length=1)]
SCHEMA = ConfigDict(extra="forbid")       # an unknown key is an error, never ignored
