"""What every command shares: the exit statuses (see the package docstring)."""

from __future__ import annotations

import argparse
from typing import TypeAlias

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_CONNECTION, EXIT_PROTOCOL, EXIT_INTERRUPTED = (
    0,
    1,
    2,
    3,
    4,
    130,
)

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``build_parser`` hands each command's ``add_parser``."""
