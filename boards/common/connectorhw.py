# One connector's driver bundle, what a board hands the firmware for each
# connector (Board.connector_hw): the control pilot, the relay, the cable
# lock (None for a tethered cable) and the meter (None without metering).


class ConnectorHw:
    def __init__(self, pilot, relay, lock=None, meter=None):
        self.pilot = pilot
        self.relay = relay
        self.lock = lock
        self.meter = meter
