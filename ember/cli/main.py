"""The ``ember`` command. Filled in by the fit/CLI work (issue 5)."""
import sys


def main(argv=None) -> int:
    print("ember: the command-line tool is not built yet (issue 5)", file=sys.stderr)
    return 2
