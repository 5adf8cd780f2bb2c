"""Target profiles: where the system under test is, how to log in, what it claims."""
