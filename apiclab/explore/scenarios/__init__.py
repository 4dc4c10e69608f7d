"""Scenario families for `apiclab explore`: compact runs whose every variation is a draw from
the run's `Choices`, so the search can enumerate and the shrinker can edit them."""
