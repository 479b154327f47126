"""Clients of the Switchboard protocol: the Python library (`clients.agent`), and desktops built on it."""

from clients.agent import AgentClient, ClientError, ConnectionClosed, RequestFailed, RequestTimeout, SupervisorClient

__all__ = ["AgentClient", "ClientError", "ConnectionClosed", "RequestFailed", "RequestTimeout", "SupervisorClient"]
