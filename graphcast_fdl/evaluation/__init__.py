"""Evaluation: WeatherBench 2 scores, baselines, scorecards and forecasts."""
