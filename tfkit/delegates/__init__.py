"""Delegate providers: can a delegate run this artifact, and how much of it."""
