"""Sweeps: many models and settings, one results table and one comparison report."""
