"""The scripted engine demo (replaced by the live server demo once the service exists)."""

from __future__ import annotations


def run_scripted_demo(seed: int) -> None:
    raise NotImplementedError("the scripted demo arrives with the engine")
