"""The ``lalarand`` command pip installs (a console script): the command line compiled into
this package's extension module, the same code as the cargo-built ``lalarand`` binary."""

import signal
import sys

from . import _lalarand


def main():
    # As a native program: Ctrl-C ends the command (or reaches its own handler, as in
    # `lalarand profile`) instead of setting Python's flag, which nothing here would check.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.stdout.flush()
    sys.exit(_lalarand._cli_main(["lalarand", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
