"""python3 -m backfill run MODULE:CLASS (and validate, rollback, control): any task."""

from backfill.commands.task import main

main()
