"""Prediction on raw text and the HTTP app."""
