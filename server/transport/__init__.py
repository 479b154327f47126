"""The thin layer between the network and the node: Starlette routes, sockets, auth."""
