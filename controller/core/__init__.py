"""The pure decision core: numpy over arrays of targets. No I/O, no clock, no logging.

Shapes used throughout: N targets (rows), M metrics, H recommendation-history slots,
E scale-event slots, P rate policies. Times are UTC epoch seconds passed in as ``now``.
"""
