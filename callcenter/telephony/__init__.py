"""Asterisk at the edge: FastAGI (:mod:`.agi`) for the IVR, AMI (:mod:`.ami`) for the dialer."""
