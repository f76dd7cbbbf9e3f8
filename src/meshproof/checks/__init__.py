"""The guarantees' checks: each measures through the target's real interfaces and judges.

Every function returns a ``meshproof.sli.Judgement`` (held / violated /
inconclusive / not measurable, the sentence that explains it, the numbers behind
it); steps turn it into a scenario's outcome. Thresholds come in as arguments,
from the catalog with the target's overrides, never as literals here.
"""
