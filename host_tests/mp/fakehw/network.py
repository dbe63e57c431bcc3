STA_IF = 0


class WLAN:
    def __init__(self, i):
        pass

    def isconnected(self):
        return False

    def active(self, v=None):
        pass

    def connect(self, ssid, pwd):
        pass
