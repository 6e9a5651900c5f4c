"""Sweeps (-m): job folders named by what they vary, and the summary tables of a sweep."""
