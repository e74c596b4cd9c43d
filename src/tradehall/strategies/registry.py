"""Where strategies come from: the built-ins, the entry point group `tradehall.strategies`, and a
configured directory of Python files.

A package publishes a strategy with
`[project.entry-points."tradehall.strategies"] my_strategy = "my_pkg.module:MyStrategy"`; a directory's
`*.py` files are imported and every `Strategy` subclass they define with a `name` is registered. The
first source to register a name keeps it (built-ins, then entry points, then the directory); a later
duplicate is skipped and logged, never silently swapped in.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import structlog

from tradehall.domain.errors import invalid_request, not_found
from tradehall.strategies.base import Strategy
from tradehall.strategies.builtin import BUILTIN_STRATEGIES

ENTRY_POINT_GROUP = "tradehall.strategies"

log = structlog.get_logger(__name__)


class StrategyRegistry:
    def __init__(self, strategies: Iterable[type[Strategy]] = ()) -> None:
        self._classes: dict[str, type[Strategy]] = {}
        self.sources: dict[str, str] = {}
        for cls in strategies:
            self.register(cls, "builtin")

    def register(self, cls: type[Strategy], source: str = "user") -> bool:
        if not (inspect.isclass(cls) and issubclass(cls, Strategy)) or not cls.name:
            raise TypeError(f"{cls!r} is not a Strategy subclass with a name")
        if cls.name in self._classes:
            if self._classes[cls.name] is not cls:
                log.warning("strategy_name_taken", name=cls.name, source=source,
                            kept=self.sources[cls.name])
            return False
        self._classes[cls.name] = cls
        self.sources[cls.name] = source
        return True

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> type[Strategy]:
        cls = self._classes.get(name)
        if cls is None:
            raise not_found(f"no strategy named {name!r}; known: {self.names()}")
        return cls

    def create(self, name: str, params: Mapping[str, object] | None = None) -> Strategy:
        if not isinstance(name, str):
            raise invalid_request("a strategy's name is a string")
        if params is not None and not isinstance(params, Mapping):
            raise invalid_request("a strategy's parameters are an object")
        return self.get(name)(params)

    def describe(self) -> list[dict[str, Any]]:
        return [self._classes[name].describe() for name in self.names()]

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        for entry in sorted(entry_points(group=group), key=lambda e: e.name):
            try:
                cls = entry.load()
                self.register(cls, f"entry_point:{entry.value}")
            except Exception as error:  # a broken plugin must not take the registry down
                log.warning("strategy_entry_point_failed", entry=entry.value, error=repr(error))

    def load_directory(self, directory: Path) -> None:
        if not directory.is_dir():
            log.warning("strategy_directory_missing", directory=str(directory))
            return
        for path in sorted(directory.glob("*.py")):
            if path.name.startswith("_"):
                continue
            module_name = f"tradehall_user_strategies.{path.stem}"
            try:
                spec = importlib.util.spec_from_file_location(module_name, path)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                spec.loader.exec_module(module)
            except Exception as error:
                sys.modules.pop(module_name, None)
                log.warning("strategy_file_failed", path=str(path), error=repr(error))
                continue
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, Strategy) and cls.__module__ == module_name and cls.name:
                    self.register(cls, f"file:{path}")


def default_registry(directory: Path | None = None, *, entry_point_group: str = ENTRY_POINT_GROUP
                     ) -> StrategyRegistry:
    """Built-ins, then the installed entry points, then the directory (when configured)."""
    registry = StrategyRegistry(BUILTIN_STRATEGIES)
    registry.load_entry_points(entry_point_group)
    if directory is not None:
        registry.load_directory(directory)
    return registry
