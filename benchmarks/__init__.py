"""asv benchmark suites for vaecf (see asv.conf.json and `nox -s bench`)."""
