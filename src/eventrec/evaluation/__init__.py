"""eventrec.evaluation: splits, baselines and offline evaluation runs (``eventrec evaluate``).

Modules: ``loader`` (interaction CSVs), ``splits``, ``baselines`` (popularity, the guide's
SVD + cosine), ``protocol`` (``evaluate_log``), ``time_protocol`` (``evaluate_time``),
``oracle`` (a synthetic platform's planted truth as a model), ``report`` (``format_table``),
``command``. They are imported one by one, so the command line does not load scikit-learn to start.
"""
