"""The devhub's HTTP routes, one router per concern."""
