"""Step definitions: thin adapters from Gherkin lines to `confsec.behaviour`."""
