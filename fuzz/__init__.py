"""Fuzzing the decoder: a harness, a structure-aware mutator, a seed corpus and a runner.

    python fuzz/run.py --inputs 10000     # coverage-guided (atheris), with the mutator below
    python -m pytest tests/test_fuzz.py   # a quick seeded run in the test suite
"""
