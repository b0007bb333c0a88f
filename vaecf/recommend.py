"""Top-k recommendations for one history of original item ids, from a trained model.

Used by ``vaecf recommend`` and from Python alike. Nothing is adjusted silently: a k outside
what the catalogue can give, an unknown id or an empty history is refused; a repeated id is
counted once and said so in the notes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from vaecf.errors import ConfigError, DataError

if TYPE_CHECKING:  # numpy and scipy load on the first call: ``import vaecf`` imports this module
    import numpy as np
    import scipy.sparse as sp

    from vaecf.data.split import Split


class Scorer(Protocol):
    """What can rank items: a ``Trainer`` (or anything with its ``scores`` method)."""

    def scores(self, foldin: sp.csr_matrix) -> np.ndarray: ...


@dataclass(frozen=True)
class Recommendation:
    """The recommended original item ids, best first, and what was noticed about the history."""

    items: list[int]
    notes: list[str] = field(default_factory=list)


def recommend(model: Scorer | Callable[[sp.csr_matrix], np.ndarray], split: Split, item_ids: Sequence[int],
              k: int) -> Recommendation:
    """The ``k`` best items for a user whose history is ``item_ids``, never one of the history.

    ``model`` is a Trainer or a scoring function (fold-in rows -> scores). ``k`` must lie in
    1..(catalogue items not in the history).
    """
    import numpy as np
    import scipy.sparse as sp

    score = model.scores if hasattr(model, "scores") else model
    column = {int(item): j for j, item in enumerate(split.item_ids)}
    counts = Counter(int(i) for i in item_ids)
    history = list(counts)  # each id once, in the order given
    notes = []
    repeated = [i for i, n in counts.items() if n > 1]
    if repeated:  # summing them would weigh those items up and change the ranking
        notes.append(f"item id(s) given more than once, counted once: {', '.join(map(str, repeated))}")
    if not history:
        raise DataError("the history is empty: give at least one item id")
    unknown = [i for i in history if i not in column]
    if unknown:
        raise DataError(f"item id(s) not in this model's catalogue: {', '.join(map(str, unknown))}")
    available = split.n_items - len(history)
    if not 1 <= k <= available:
        raise ConfigError("k", k, f"in 1..{available} (the catalogue's {split.n_items} items less the "
                                  f"{len(history)} of the history)")
    cols = [column[i] for i in history]
    row = sp.csr_matrix((np.ones(len(cols), np.float32), ([0] * len(cols), cols)), shape=(1, split.n_items))
    scores = np.asarray(score(row), dtype=np.float64)[0]
    scores[cols] = -np.inf  # the history is never recommended back
    top = np.argsort(-scores, kind="stable")[:k]
    return Recommendation(items=[int(split.item_ids[j]) for j in top], notes=notes)
