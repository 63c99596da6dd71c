"""The channels messages leave by, behind one interface (``base.ChannelBackend``)."""
