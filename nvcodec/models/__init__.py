"""What every family builds on: the Backbone base class, shared layers, capabilities.

The families themselves (one folder each) are in ``nvcodec/families``.
"""
