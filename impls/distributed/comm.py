"""The communication a distributed impl does, through one object that also counts it.

Every byte an impl hands to torch.distributed goes through a Comm, which adds it up per
operation, so a record can say how much a call communicated (`counted`) next to what the
algorithm's derivation expects. Counted is the payload handed to the calls: a send's
tensor, an all-to-all's pieces bound for other ranks, an all-reduce's tensor (what is
reduced, not what a given all-reduce algorithm puts on the wire). A world of one does no
communication and counts nothing.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass
class Comm:
    rank: int = 0
    world: int = 1
    group: object = None  # a torch.distributed process group; None: the default one
    bytes_by_op: Counter = field(default_factory=Counter)
    calls_by_op: Counter = field(default_factory=Counter)

    def reset(self) -> None:
        self.bytes_by_op.clear()
        self.calls_by_op.clear()

    @property
    def bytes(self) -> int:
        return sum(self.bytes_by_op.values())

    def _count(self, op: str, nbytes: int) -> None:
        self.bytes_by_op[op] += nbytes
        self.calls_by_op[op] += 1

    def exchange(self, send: torch.Tensor, to: int, recv: torch.Tensor, source: int) -> list:
        """Start sending `send` to rank `to` and receiving rank `source`'s tensor into `recv`;
        returns the requests to wait on (the caller computes meanwhile)."""
        self._count("send", send.numel() * send.element_size())
        ops = [dist.P2POp(dist.isend, send, to, self.group), dist.P2POp(dist.irecv, recv, source, self.group)]
        return dist.batch_isend_irecv(ops)

    def all_to_all(self, out: torch.Tensor, pieces: torch.Tensor) -> None:
        """out[g] = rank g's pieces[self.rank]: dim 0 of both has one piece per rank."""
        piece_bytes = pieces[0].numel() * pieces.element_size()
        self._count("all_to_all", piece_bytes * (self.world - 1))
        dist.all_to_all_single(out, pieces, group=self.group)

    def all_reduce(self, tensor: torch.Tensor) -> None:
        """Sum `tensor` over the ranks, in place."""
        if self.world == 1:
            return
        self._count("all_reduce", tensor.numel() * tensor.element_size())
        dist.all_reduce(tensor, group=self.group)
