"""Feed-forward layers (family "ffn"): registered nn.Module classes `cls(d_model, **params)`,
`forward(x (..., d_model)) -> (..., d_model)`, with `aux_loss` (a scalar tensor to add
to the training loss, or None) and `stats` (a dict of floats) after each forward."""
