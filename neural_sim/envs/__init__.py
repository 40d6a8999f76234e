"""Gymnasium environments over a learned simulator: single, batched, id registration."""
