"""EAGER: two-stream generative recommendation with behavior-semantic collaboration (KDD'24)."""
