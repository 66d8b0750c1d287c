"""Setpoint: an autoscaling and self-healing controller."""

__version__ = "0.1.0"
