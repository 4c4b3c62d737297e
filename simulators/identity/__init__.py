"""The identity services, simulated: the police identity service and the bank binding service.

Two separate small aiohttp processes (``python -m simulators.identity.police``,
``python -m simulators.identity.binding``) answering from a documented test registry
(``test_registry.json``), with realistic latency and a failure mode switchable at start and at run
time. The product talks to them, or to a real provider, through ``ivr/risk/identity.py``.
"""
