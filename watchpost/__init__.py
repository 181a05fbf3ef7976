"""Watchpost: alert ingestion for community public-safety command centres.

This package holds what belongs to no single stage: the domain model, configuration,
storage, embedded services for a newcomer's machine, and the command line on top.
"""
