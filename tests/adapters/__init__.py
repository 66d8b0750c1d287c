"""Tests of the adapters against real servers (and stubs only where a real server cannot misbehave on demand)."""
