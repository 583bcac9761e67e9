"""The fake LLM server: every dialect tokenrelay speaks, deterministic models, paced
timing and fault injection, on loopback. Tests and benchmarks use it as the upstream;
users can point their own apps' tests at it (``MockServer``) to run offline.
"""

from .app import ConnectionDropped, MockApp, MockConfig
from .faults import Fault, parse_fault
from .script import MODELS, Script, script
from .server import MockServer, run

__all__ = [
    "MODELS",
    "ConnectionDropped",
    "Fault",
    "MockApp",
    "MockConfig",
    "MockServer",
    "Script",
    "parse_fault",
    "run",
    "script",
]
