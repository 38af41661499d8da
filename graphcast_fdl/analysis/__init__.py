"""Cost model and time/memory estimator per phase on named hardware."""
