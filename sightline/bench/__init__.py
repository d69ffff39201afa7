"""`sightline bench VERB`: one module per verb, each with `add_args(parser)` and `run(args, settings)`.

`kit`, `stack` and `stats` are shared by the stack benches (pipeline, soak).
"""
