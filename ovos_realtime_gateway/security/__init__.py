"""Authentication, Rego policy, and rate limiting for every entry point."""
