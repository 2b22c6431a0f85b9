"""Reference baselines and floor methods: one readable file per technique."""
