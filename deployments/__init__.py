"""Deployments of seqflow's flows: schedules and parameters, kept apart from flow code."""
