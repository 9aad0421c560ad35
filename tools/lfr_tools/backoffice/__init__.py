"""The back office: authority keys and watchlist bundles, built off the device."""
