"""Figures of claims, studies and audits (matplotlib; never calls ``matplotlib.use``)."""
