"""Model compression: one module per technique (prune.py: TFMOT magnitude pruning). Importing
this package loads no TensorFlow."""
