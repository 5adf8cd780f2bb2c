"""What the steps call: participants, conference actions and the checks on what they saw."""
