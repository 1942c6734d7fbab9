"""The data plane: endpoint replicas that answer predictions without the metadata store
on the request path (see :mod:`.runtime`)."""
