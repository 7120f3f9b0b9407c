from respy._cli import entry_point

entry_point()
