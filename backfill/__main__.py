"""python3 -m backfill run MODULE:CLASS (and validate, rollback, control): any task.
Installed, the same command is `firestore-backfill`."""

from backfill.commands import control
from backfill.commands.task import main

main.add_command(control.main, "control")

if __name__ == "__main__":
    main()
