"""Health: ``heal(params, observation, state, now)`` for N targets of one policy.

checks: health checks as alert state machines with hysteresis; revision_test: the sequential
test of a new revision against the stable one; remediate: restart, rollback or hold under budgets,
a circuit breaker and verification; state_codec: the durable form of that memory.
"""
