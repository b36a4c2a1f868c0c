"""Connectors: mediarunner's fleet serving another system's job protocol (PeerTube's remote runners).

A connector submits ordinary mediarunner jobs through :class:`mediarunner.client.Client` and
watches them; it never reaches into the workers, the API or the CLI.
"""
