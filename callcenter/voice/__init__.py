"""Voice: the outbound dialer, the mode switch and (elsewhere in this package) the FastAGI IVR."""
