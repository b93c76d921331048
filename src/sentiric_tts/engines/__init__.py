"""Synthesis engines behind one protocol (see base.py)."""
