"""The compiled engine (`make compile`) against the interpreted one: same commands, same events and hash.

mypyc is a second implementation of the same source (its native classes, checked attribute reads and
integer arithmetic differ from CPython's), so the random command streams of the property tests run
through both and every step must give byte-identical events and an identical `state_hash`. The
interpreted engine runs in a worker process on a copy of the sources without the native modules.
Without the native modules (the normal, interpreted tree) the test skips.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tradehall.engine.engine as engine_module
from tests.engine_support.streams import command_streams, finishing_commands, setup_commands
from tradehall.domain import commands as c
from tradehall.domain.enums import SelfTradePrevention
from tradehall.engine import Engine

COMPILED = not engine_module.__file__.endswith(".py")
pytestmark = pytest.mark.skipif(
    not COMPILED,
    reason="the compiled engine is not built (run `make compile`; `make test-compiled` does it all)",
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The worker: reads length-prefixed pickled command lists on stdin, answers each with the per-step
# trace (digest of the events, state_hash) of a fresh interpreted engine.
WORKER = """
import hashlib, pickle, struct, sys
sys.path.insert(0, sys.argv[1])
import msgspec
import tradehall.engine.engine as engine_module
from tradehall.engine import Engine
assert engine_module.__file__.endswith(".py"), engine_module.__file__
out = sys.stdout.buffer
def trace(commands):
    engine = Engine()
    steps = []
    for command in commands:
        events = engine.apply(command)
        digest = hashlib.blake2b(msgspec.msgpack.encode(events), digest_size=16).hexdigest()
        steps.append((digest, engine.state_hash()))
    return steps
def frame(data):
    out.write(struct.pack("<I", len(data)) + data)
    out.flush()
frame(pickle.dumps(engine_module.__file__))
while True:
    head = sys.stdin.buffer.read(4)
    if len(head) < 4:
        break
    (size,) = struct.unpack("<I", head)
    frame(pickle.dumps(trace(pickle.loads(sys.stdin.buffer.read(size)))))
"""


def trace(commands: list[c.Command]) -> list[tuple[str, str]]:
    engine = Engine()
    steps = []
    for command in commands:
        events = engine.apply(command)
        digest = hashlib.blake2b(msgspec.msgpack.encode(events), digest_size=16).hexdigest()
        steps.append((digest, engine.state_hash()))
    return steps


class Worker:
    """The interpreted engine in a child process on a copy of the sources without native modules."""

    def __init__(self, source: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(source)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.module_file: str = self._read()

    def _read(self) -> Any:
        stdout: IO[bytes] = self.process.stdout  # type: ignore[assignment]
        head = stdout.read(4)
        assert len(head) == 4, "the interpreted worker died"
        (size,) = struct.unpack("<I", head)
        return pickle.loads(stdout.read(size))

    def trace(self, commands: list[c.Command]) -> list[tuple[str, str]]:
        stdin: IO[bytes] = self.process.stdin  # type: ignore[assignment]
        data = pickle.dumps(commands)
        stdin.write(struct.pack("<I", len(data)) + data)
        stdin.flush()
        result: list[tuple[str, str]] = self._read()
        return result

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def interpreted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    package = Path(engine_module.__file__).resolve().parents[1]
    copy = tmp_path_factory.mktemp("interpreted")
    shutil.copytree(package, copy / "tradehall", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    worker = Worker(copy)
    try:
        yield worker
    finally:
        worker.close()


def test_the_two_engines_are_really_different_builds(interpreted: Worker) -> None:
    assert interpreted.module_file.endswith("engine.py")
    assert not engine_module.__file__.endswith(".py")


@SETTINGS
@given(stream=command_streams(), finish=finishing_commands(), stp=st.sampled_from(list(SelfTradePrevention)))
def test_compiled_and_interpreted_engines_agree_at_every_step(
    interpreted: Worker, stream: list[c.Command], finish: list[c.Command], stp: SelfTradePrevention
) -> None:
    commands = setup_commands(stp) + stream + finish
    compiled_steps = trace(commands)
    interpreted_steps = interpreted.trace(commands)
    for step, (mine, theirs) in enumerate(zip(compiled_steps, interpreted_steps, strict=True)):
        assert mine == theirs, f"step {step}: {commands[step]!r}"
