"""Pure DataFrame -> DataFrame feature transforms."""
