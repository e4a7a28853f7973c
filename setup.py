"""Packages of the wheel; everything else is in pyproject.toml.

The default config files ship inside the wheel as the package data ``credspark/_conf`` (what
``credspark.config.default_conf_dir`` finds outside a checkout); ``conf/`` stays their one source.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["credspark*"]), "credspark._conf", "credspark._conf.env"],
    package_dir={"credspark._conf": "conf"},
    package_data={"credspark._conf": ["*.yaml"], "credspark._conf.env": ["*.yaml"]},
)
