"""Job entry points: each file parses flags, then runs one pipeline function through run_job.

For spark-submit a job file is the main script and credspark ships as a wheel (--py-files); tests import
them as ``jobs.<name>`` and call ``main([...])``.
"""
