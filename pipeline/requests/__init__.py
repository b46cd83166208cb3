"""Removal requests (issue 15): named people in, a defended model and its proof out.

`request` reads request folders and their chain, `people` finds each person's photos,
`fulfil` trains and attacks one request, `proof` words the result, and `knows` runs the
attack alone for given names and photos against any open_clip model.
"""
