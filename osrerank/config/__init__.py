"""The machinery of settings, in modules with one job each (this package's face holds nothing, so the lowest
modules can import ``environment`` and ``section`` without pulling in anything else); the root ``Settings``
that composes the sections is ``osrerank/settings.py``, above the modules that declare them, and what setup
recorded for later commands is ``osrerank/records.py``:

section.py      the base of every settings section and its field helper (flag, description, default)
sources.py      where values come from and in what order: flags > ``OSRERANK_*`` > ``--config`` TOML > what setup
                recorded > default; unknown names refused with the closest known one
environment.py  the process-level ``OSRERANK_*`` variables (cache folder, secrets, test knobs): the only
                reader of ``os.environ`` for that prefix besides the settings sources
"""
