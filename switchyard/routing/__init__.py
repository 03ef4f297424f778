"""Routing policies: a batch of requests -> one RouteDecision each."""

from switchyard.routing.base import (
    RouteDecision,
    RouteRequest,
    RoutingContext,
    RoutingOptions,
    RoutingPolicy,
    get_policy,
    policies,
)

__all__ = ["RouteDecision", "RouteRequest", "RoutingContext", "RoutingOptions", "RoutingPolicy",
           "get_policy", "policies"]
