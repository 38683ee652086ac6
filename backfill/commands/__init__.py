"""The tools' click commands: what the runbook's scripts run in a checkout, and what the
installed console scripts (wardrobe-backfill, wardrobe-validate, wardrobe-rollback,
wardrobe-control, wardrobe-vocabulary) are."""
