"""The run machinery behind ``meshproof run``.

- ``plan``: what a run will do (guarantees, features directory, the pytest command);
- ``features``: pytest plugin collecting ``*.feature`` files, ids and profiles as markers;
- ``items``: a collected scenario's guarantee ids, example cluster and name;
- ``verdicts``: ``GuaranteeViolated``, ``NotMeasurable``, ``require``, aggregation;
- ``evidence``: the ``evidence`` fixture's recorder;
- ``pytest_plugin``: writes the results file the runner follows;
- ``results``: reading that file; ``console``: the terminal output.

``meshproof.runner.run_profile`` ties them together; ``meshproof.report`` writes
the reports.
"""
