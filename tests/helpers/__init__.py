"""What tests share: ways to run the project (``runs``) and data made in the test (the other
modules). Test modules import from here, never from each other; fixtures live in conftest.py."""
