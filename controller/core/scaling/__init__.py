"""Scaling: ``decide(params, observation, state, now)`` for N targets of one policy.

The named pipeline signal -> smooth -> propose (Setpoint's rules, or HPA's pod-level calculator
for the ``hpa`` preset) -> forecast / ramp (optional, only ever raise) -> combine -> stabilize ->
limit, each stage a pure function over (N, M) arrays with a reason code per outcome; compiled.py
is the numba twin of the common path.
"""
