"""`python scheduler.py [options]`: the same as `termshift schedule` (Termshift as a service)."""

from termshift.commands.schedule import schedule_command

if __name__ == "__main__":
    schedule_command()
