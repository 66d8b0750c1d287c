"""``python -m controller.cli``: the ``setpoint`` command."""

from controller.cli import main

main()
