"""Campaigns and their petitions."""
