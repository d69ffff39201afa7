"""Process plumbing every Sightline process shares: lifecycle states, stop on signals, structured logs.

Not messaging (that is `bus`) and not configuration (`configs`): what a long-lived process needs
to start, say what it is doing, and stop cleanly.
"""
