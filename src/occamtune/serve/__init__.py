"""The HTTP app around a loaded model (`occamtune.inference.Predictor`)."""
