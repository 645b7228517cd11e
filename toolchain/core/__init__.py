"""Errors and exit codes, atomic file I/O, gated outputs (the last good one kept), config files and their schemas, package data, C text helpers. Imports no other toolchain package."""
