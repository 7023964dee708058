"""bench/run's sections, one module each: how it measures (``run``) and the table it prints.

They share one Context (context.py): the settings, the work folder, the seeded databases,
and the results and commands the report is written from.
"""
