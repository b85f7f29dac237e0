"""The supply-chain registry: companies (group → brands) and facilities (production sites)."""
