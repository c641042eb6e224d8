"""``python -m ragline``: the same command line as the ``ragline`` script."""

from ragline.interfaces.cli import main

main()
