"""Models: the source model as a Backbone (ordered blocks plus a head) and what the user typed resolved to inputs.

Torchvision weights, checkpoints, the table MLP and the small CNN, or a model pretrained here on the source data.
"""
