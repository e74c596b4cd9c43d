"""Typed, validated strategy parameters and their schema (what `GET /strategies` shows).

A strategy declares `parameters = {"fast": Param(int, 10, min=1), ...}`; `resolve` checks what a user
gives (JSON values, or strings from the command line) against it once, at the edge, and hands the
strategy plain Python values. A bad value is an `invalid_request` naming the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tradehall.domain.errors import invalid_request

ParamValue = int | float | str | bool

_TYPE_NAMES: dict[type, str] = {int: "int", float: "float", str: "str", bool: "bool"}


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: its type (int, float, str or bool), default and optional bounds or choices."""

    type: type
    default: ParamValue
    min: float | None = None
    max: float | None = None
    choices: tuple[ParamValue, ...] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.type not in _TYPE_NAMES:
            raise TypeError(f"a parameter's type is int, float, str or bool, not {self.type!r}")
        self.check(self.default, "default")

    def schema(self) -> dict[str, Any]:
        """`{type, default, min?, max?, choices?}` as in the contract (and a description when given)."""
        out: dict[str, Any] = {"type": _TYPE_NAMES[self.type], "default": self.default}
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.description:
            out["description"] = self.description
        return out

    def coerce(self, value: object, name: str) -> ParamValue:
        """The value as this parameter's type; strings (from `--param k=v`) are parsed."""
        kind = self.type
        result: ParamValue
        if kind is bool:
            if isinstance(value, bool):
                result = value
            elif isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
                result = value.lower() in ("true", "1", "yes")
            else:
                raise invalid_request(f"parameter {name!r} must be a boolean, not {value!r}")
        elif kind is int:
            if isinstance(value, bool):
                raise invalid_request(f"parameter {name!r} must be an integer, not {value!r}")
            if isinstance(value, int):
                result = value
            elif isinstance(value, float) and value.is_integer():
                result = int(value)
            elif isinstance(value, str):
                try:
                    result = int(value.strip())
                except ValueError:
                    raise invalid_request(f"parameter {name!r} must be an integer, not {value!r}") from None
            else:
                raise invalid_request(f"parameter {name!r} must be an integer, not {value!r}")
        elif kind is float:
            if isinstance(value, bool):
                raise invalid_request(f"parameter {name!r} must be a number, not {value!r}")
            if isinstance(value, int | float):
                result = float(value)
            elif isinstance(value, str):
                try:
                    result = float(value.strip())
                except ValueError:
                    raise invalid_request(f"parameter {name!r} must be a number, not {value!r}") from None
            else:
                raise invalid_request(f"parameter {name!r} must be a number, not {value!r}")
            if result != result or result in (float("inf"), float("-inf")):
                raise invalid_request(f"parameter {name!r} must be a finite number")
        else:
            if not isinstance(value, str):
                raise invalid_request(f"parameter {name!r} must be a string, not {value!r}")
            result = value
        self.check(result, name)
        return result

    def check(self, value: ParamValue, name: str) -> None:
        if self.choices is not None and value not in self.choices:
            raise invalid_request(f"parameter {name!r} must be one of {list(self.choices)}, not {value!r}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if self.min is not None and value < self.min:
                raise invalid_request(f"parameter {name!r} must be at least {self.min}, not {value}")
            if self.max is not None and value > self.max:
                raise invalid_request(f"parameter {name!r} must be at most {self.max}, not {value}")


def resolve(schema: Mapping[str, Param], given: Mapping[str, object] | None) -> dict[str, ParamValue]:
    """Defaults overlaid with the given values, each checked; an unknown name is refused."""
    given = given or {}
    unknown = sorted(set(given) - set(schema))
    if unknown:
        raise invalid_request(f"unknown parameter(s) {unknown}; this strategy takes {sorted(schema)}")
    return {
        name: (param.coerce(given[name], name) if name in given else param.default)
        for name, param in schema.items()
    }


def schema_of(schema: Mapping[str, Param]) -> dict[str, dict[str, Any]]:
    return {name: param.schema() for name, param in schema.items()}
