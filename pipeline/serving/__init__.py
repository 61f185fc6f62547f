"""Serving pushed models: TF Serving's REST API over the push destination
(`server`, for development) and a client for it (`client`, standard library
only). Imports: components.pusher (what a pushed version is).
"""
