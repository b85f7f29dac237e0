"""Petition milestones: a petition's count first crossing a percentage of its goal (50 %, 100 %, …)."""
