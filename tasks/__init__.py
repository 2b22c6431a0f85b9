"""Task implementations: one module per task (data, metrics, targets, budgets, evaluation)."""
