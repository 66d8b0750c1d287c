"""Setpoint's bundled example policies and the policy JSON Schema, installed as the package
``setpoint_policies`` (see pyproject.toml). A regular package, not a namespace one, so that an
installed wheel's copy is found first even beside an editable install of a checkout."""
