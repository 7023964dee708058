"""What isolates the running process from its host, read from /proc and the filesystem.

Its dependencies, processes, container, supervisor and privileges, as facts: they make the
README's comparison between a container and a host measurable. ``flask isolation`` reports,
``flask isolation compare`` puts two reports side by side, and the operator page
/admin/isolation shows the report of the worker serving it.

- ``proc``: reading and parsing /proc and the files beside it.
- ``dependencies``, ``processes``, ``container``, ``supervisor``, ``privileges``: the report's
  sections, one each.
- ``probe``: ``collect``, the whole report.
- ``formatting``: the report as rows, text and comparisons, and without others' command lines.
- ``cli``: the ``flask isolation`` commands (``__main__``: the same as ``python -m``).
- ``views``: the blueprint of the operator page, off unless ISOLATION_PAGE is true.

Every function that reads the system takes ``root`` so tests can point it at recorded /proc
trees. Where a value cannot be told (not Linux, an unreadable file) it is None and the
section's ``reasons`` says why: a report never guesses.
"""
