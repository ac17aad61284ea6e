"""How every command fails: a one-line message in the command line's own words, never a traceback.

:func:`flag_words` rewrites a :class:`co2cb.ConfigError` written for the Python API (``interval_s=0.01
is out of range``) with the flags the user typed (``--interval 0.01 is out of range``).
:func:`guarded` runs a command's handler and turns what escapes it into an exit code: a closed pipe
(``co2cb regions | head -1``) ends quietly with 141, as a command killed by SIGPIPE; Ctrl-C with
130; a :class:`~co2cb.cli.recorded.CommandError`, a ConfigError or an OSError with a one-line
message. Anything else is a bug: one line that says so, and ``CO2CB_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable

from co2cb.cli.recorded import CommandError
from co2cb.core.config import ConfigError

DEBUG_ENV = "CO2CB_DEBUG"

#: Tracker options the commands set from a flag, and that flag.
FLAGS = {
    "interval_s": "--interval",
    "output_dir": "--output-dir",
    "run_name": "--name",
    "region": "--region",
    "pue": "--pue",
    "scope": "--scope",
    "prometheus_port": "--prometheus-port",
    "prometheus_addr": "--prometheus-addr",
    "pushgateway": "--pushgateway",
    "opentelemetry": "--opentelemetry",
}
_OPTION = re.compile(r"\b(" + "|".join(FLAGS) + r")\b(=?)")


def flag_words(message: str) -> str:
    """``message`` with the Tracker options the commands set from a flag named by that flag.

    ``name=`` becomes ``--flag ``; a bare name too when it is an identifier (``prometheus_port``), not
    a word of the sentence (``region``).
    """

    def flag(m: re.Match[str]) -> str:
        if m.group(2):
            return FLAGS[m.group(1)] + " "
        return FLAGS[m.group(1)] if "_" in m.group(1) else m.group(0)

    return _OPTION.sub(flag, message)


def _stdout_closed() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def guarded(command: str, handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run ``handler(args)``; what escapes it becomes a message on stderr and an exit code (see the module)."""
    try:
        return int(handler(args))
    except CommandError as e:
        print(f"co2cb {command}: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        _stdout_closed()
        return 141
    except KeyboardInterrupt:
        print(f"co2cb {command}: interrupted", file=sys.stderr)
        return 130
    except ConfigError as e:
        print(f"co2cb {command}: {flag_words(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        print(f"co2cb {command}: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except Exception as e:
        if os.environ.get(DEBUG_ENV):
            raise
        print(
            f"co2cb {command}: unexpected error ({type(e).__name__}: {e}); this is a bug in co2cb, please report it "
            f"with the command line ({DEBUG_ENV}=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1
