"""The ``setpoint`` command: the composition root. Commands parse arguments, call the layers
below and print; no logic of their own lives here.

One module per group of commands, registered on the Typer app of :mod:`.root` when imported
(in the order ``setpoint --help`` lists them): :mod:`.policy_files` (validate, schema, import),
:mod:`.simulation` (simulate, warm), :mod:`.search` (sweep, tune), :mod:`.backtest`,
:mod:`.records` (explain, status), :mod:`.live` (run, resume, accept, sim serve).
"""

from controller.cli.root import EXIT_BUG, EXIT_HOLDOUT_MISSED, EXIT_INVALID, app, describe_error, main
from controller.cli import policy_files, simulation, search, backtest, records, live  # noqa: E402,F401  (register)

__all__ = ["EXIT_BUG", "EXIT_HOLDOUT_MISSED", "EXIT_INVALID", "app", "describe_error", "main"]
