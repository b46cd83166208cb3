"""Removal requests (issue 15): named people in, a defended model and its proof out.

So far: `knows`, the attack alone for given names and photos against any open_clip model.
"""
