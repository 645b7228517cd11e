"""Errors and exit codes, atomic file I/O, config files and their schemas, package data, C text helpers. Imports no other toolchain package."""
