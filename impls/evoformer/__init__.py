"""AlphaFold 2's Evoformer ops (Jumper et al. 2021, Supplementary Information 1.6).

Each op is an `nn.Module(dims, chunk_size=None)` whose `forward(m, z)` returns the
update of the MSA representation m (N_seq, N_res, c_m) or of the pair
representation z (N_res, N_res, c_z), as the algorithm of the same number does:

  Algorithm  7  MSARowAttentionWithPairBias     msa_attention.py      -> m update
  Algorithm  8  MSAColumnAttention              msa_attention.py      -> m update
  Algorithm 10  OuterProductMean                outer_product_mean.py -> z update
  Algorithm 11  TriangleMultiplicationOutgoing  triangle_multiplication.py
  Algorithm 12  TriangleMultiplicationIncoming  triangle_multiplication.py
  Algorithm 13  TriangleAttentionStartingNode   triangle_attention.py
  Algorithm 14  TriangleAttentionEndingNode     triangle_attention.py

Every op is registered twice in the `evoformer` family: `<op>` runs whole, and
`<op>_chunked` runs the same weights over slices of an axis whose rows are
independent (chunking.py), which bounds the largest intermediate as AlphaFold's
inference does; both must equal the float64 specification in reference.py.
"""
