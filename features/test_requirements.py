"""Binds every feature file under features/ (pytest-bdd needs a collected module to do it)."""

from pytest_bdd import scenarios

scenarios(".")
