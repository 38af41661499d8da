"""Data: forcings, windowing, statistics and resumable host-sharded iterators."""
