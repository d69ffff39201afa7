"""Evaluation: ground truth (Sightline JSON, MOTChallenge), box matching, scores, the vtest truth.

Nothing here runs in a Sightline process; `sightline replay --truth` and the pytest plugin use it.
"""
