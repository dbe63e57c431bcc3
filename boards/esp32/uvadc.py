# The ESP32's ADC1 inputs as the drivers read them: read_u16() over the
# calibrated read_uv() (11 dB attenuation), for the pilot and the meter.
import machine


class UvAdc:
    def __init__(self, pin):
        self._a = machine.ADC(machine.Pin(pin), atten=machine.ADC.ATTN_11DB)

    def read_u16(self):
        return min(65535, self._a.read_uv() * 65535 // 3300000)
