"""Sequence mixers: the token-mixing half of a block (attention, RNN/LSTM/GRU, Mamba, S4D).

Contract (family "mixer", registered nn.Module classes built as `cls(d_model, **params)`):
  forward(x) -> y                 x, y: (B, T, d_model), the whole sequence at once
  init_state(batch, max_len)      empty state: KV cache, hidden state or SSM state
  prefill(x, state) -> (y, state) T >= 1 new tokens continuing from `state`
  step(x_t, state) -> (y_t, state) x_t, y_t: (B, d_model), one token
forward(x) == prefill(x, init_state(B, T))[0] == repeated step, within the
precision's tolerance. `impls.mixers.state.state_bytes(state)` sizes any state.
A mixer without a backward pass registers with backward=False: the harness skips
its training cases with that reason (tests/test_gradients.py checks the others).
"""
