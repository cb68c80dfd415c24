"""Export worker processes: the room above ``jobs`` (claiming) and ``export`` (running a job).

``python -m mailcrate.runner`` is the worker child that ``mailcrate serve`` starts;
``mailcrate worker`` runs the same loop from the CLI (:func:`mailcrate.runner.worker.run_worker`).
"""
