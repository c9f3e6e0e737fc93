"""`fleettop` (the console script) and `python -m app`.

The cyclic garbage collector is off while the modules load: start-up creates some
hundred thousand objects that live as long as the process (modules, pydantic
schemas), and collecting among them finds nothing. fleettop.cli.main turns it back on
once the command's modules are in, having moved them out of its sight.
"""

import gc
import sys


def main() -> int:
    gc.disable()
    from fleettop.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
