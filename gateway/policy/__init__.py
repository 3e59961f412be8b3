"""Policies: the file model, the loader with hot reload, and request evaluation.

Public API: :class:`PolicyStore` (load, hot reload, status), :func:`evaluate` over :class:`RequestFacts`
(built by :func:`facts_for`) giving a :class:`Decision`, :class:`DetectorRegistry` (what the detector catalog
must provide), :func:`load_policy` / :func:`compile_sources`, and the CLI functions in :mod:`gateway.policy.cli`.
"""
from gateway.policy.compiled import ApprovalSpec, MaskingSpec, Policy, ResponseRule, Rule
from gateway.policy.engine import Decision, RequestFacts, evaluate, facts_for
from gateway.policy.loader import compile_sources, load_policy
from gateway.policy.registry import CustomDetector, DetectorRegistry, Scanner
from gateway.policy.reload import PolicyStore
from gateway.policy.source import PolicyError, Problem

__all__ = [
    "ApprovalSpec", "CustomDetector", "Decision", "DetectorRegistry", "MaskingSpec", "Policy", "PolicyError",
    "PolicyStore", "Problem", "RequestFacts", "ResponseRule", "Rule", "Scanner", "compile_sources", "evaluate",
    "facts_for", "load_policy",
]
