// The RP2040 (Raspberry Pi Pico) running a MicroPython UF2 in the rp2040js
// emulator, driven by tools/pico/harness.py over stdin/stdout, one JSON
// object per line (the protocol is in docs/pico-emulator.md).
//
//   node tools/pico/runner.mjs --uf2 FW.uf2 --bootrom B1.bin --fs FS.img [--romfs R.img]
//
// The filesystem region lives in the file FS.img: every flash erase and
// program the firmware does is written through to it at once, so killing
// this process is a power cut that leaves the flash as a chip would.
import fs from 'fs';
import { Simulator, USBCDC, ConsoleLogger, LogLevel } from 'rp2040js';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].slice(2)] = process.argv[i + 1];

const FLASH_BASE = 0x10000000;
const FS_OFFSET = 0xa0000;      // RPI_PICO: 2 MiB flash, the last 1408 KiB are the filesystem
const FS_BYTES = 1408 * 1024;
const ROMFS_BYTES = 192 * 1024; // a ROMFS build's partition, just below the filesystem
const CLOCK_HZ = 125e6;

const sim = new Simulator();
const mcu = sim.rp2040;
mcu.logger = new ConsoleLogger(LogLevel.Error);

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const b64 = (bytes) => Buffer.from(bytes).toString('base64');

// --- the bootrom: its flash erase/program entries become breakpoints that
// this runner serves (rp2040js drops writes made through the SSI) ---
const rom = new Uint32Array(new Uint8Array(fs.readFileSync(args.bootrom)).buffer);
const romv = new DataView(rom.buffer);
const entry = {};
for (let p = romv.getUint16(0x14, true); romv.getUint16(p, true); p += 4) {
  entry[String.fromCharCode(romv.getUint8(p), romv.getUint8(p + 1))] = romv.getUint16(p + 2, true) & ~1;
}
const BKPT_ERASE = 0xb0, BKPT_PROGRAM = 0xb1;
romv.setUint16(entry.RE, 0xbe00 | BKPT_ERASE, true);   // flash_range_erase(addr, count, ...)
romv.setUint16(entry.RP, 0xbe00 | BKPT_PROGRAM, true); // flash_range_program(addr, data, count)
mcu.loadBootrom(rom);

// --- flash: the UF2, then the filesystem (and ROMFS) regions ---
const uf2 = fs.readFileSync(args.uf2);
for (let off = 0; off + 512 <= uf2.length; off += 512) {
  if (uf2.readUInt32LE(off) !== 0x0a324655 || uf2.readUInt32LE(off + 4) !== 0x9e5d5157) {
    throw new Error('not a UF2 file: ' + args.uf2);
  }
  const addr = uf2.readUInt32LE(off + 12), size = uf2.readUInt32LE(off + 16);
  mcu.flash.set(uf2.subarray(off + 32, off + 32 + size), addr - FLASH_BASE);
}
if (args.romfs) {
  const img = fs.readFileSync(args.romfs);
  if (img.length > ROMFS_BYTES) throw new Error('ROMFS image over 192 KiB');
  mcu.flash.set(img, FS_OFFSET - ROMFS_BYTES);
}
let fsFd = null;
if (args.fs) {
  if (fs.existsSync(args.fs)) {
    const img = fs.readFileSync(args.fs);
    mcu.flash.set(img.subarray(0, FS_BYTES), FS_OFFSET);
  } else {
    mcu.flash.fill(0xff, FS_OFFSET, FS_OFFSET + FS_BYTES); // erased: MicroPython formats it
    fs.writeFileSync(args.fs, mcu.flash.subarray(FS_OFFSET, FS_OFFSET + FS_BYTES));
  }
  fsFd = fs.openSync(args.fs, 'r+');
}
const flashStats = { erase: 0, program: 0 };
function persist(a, n) {
  // The changed range of the filesystem region, written through.
  const lo = Math.max(a, FS_OFFSET), hi = Math.min(a + n, FS_OFFSET + FS_BYTES);
  if (fsFd !== null && lo < hi) fs.writeSync(fsFd, mcu.flash, lo, hi - lo, lo - FS_OFFSET);
}
mcu.onBreak = (code) => {
  const r = mcu.core.registers;
  const a = r[0] & 0xffffff;
  if (code === BKPT_ERASE) {
    mcu.flash.fill(0xff, a, a + r[1]);
    persist(a, r[1]);
    flashStats.erase++;
  } else if (code === BKPT_PROGRAM) {
    for (let i = 0; i < r[2]; i++) mcu.flash[a + i] &= mcu.readUint8(r[1] + i); // NOR: bits only clear
    persist(a, r[2]);
    flashStats.program++;
  } else {
    out({ ev: 'log', msg: `BKPT ${code} at ${mcu.core.PC.toString(16)}` });
    return;
  }
  mcu.core.PC = mcu.core.LR & ~1; // return from the bootrom function
};

// --- ADC sources: a constant, a sine (mains), or a pin's output (the
// control pilot: its PWM high and low levels) ---
const adcSrc = [null, null, null, null, null];
function adcValue(ch) {
  const s = adcSrc[ch];
  if (!s) return mcu.adc.channelValues[ch];
  let v;
  if (s.mode === 'pin') {
    v = mcu.gpio[s.pin].outputValue ? s.hi : s.lo;
  } else {
    const t = sim.clock.nanos / 1e9;
    v = s.dc + s.amp * Math.sin(2 * Math.PI * s.hz * t + (s.phase || 0) * Math.PI / 180);
  }
  return Math.max(0, Math.min(4095, Math.round(v)));
}
const adcAlarm = mcu.clock.createAlarm(() => mcu.adc.completeADCRead(adcValue(mcu.adc.currentChannel), false));
mcu.adc.onADCRead = (ch) => {
  mcu.adc.currentChannel = ch;
  adcAlarm.schedule(mcu.adc.sampleTime * 1000);
};

// --- GPIO rules: an input that follows an output (relay feedback), a
// latch set and reset by two outputs (cable lock and its sense switch) ---
const rules = [];
function applyRules() {
  for (const r of rules) {
    if (r.kind === 'follow') {
      const v = mcu.gpio[r.src].outputValue !== !!r.invert;
      mcu.gpio[r.pin].setInputValue(v);
    } else if (r.kind === 'latch') {
      if (mcu.gpio[r.set].outputValue) r.state = true;
      if (mcu.gpio[r.reset].outputValue) r.state = false;
      mcu.gpio[r.pin].setInputValue(r.state === !!r.active);
    }
  }
}
for (const pin of mcu.gpio) pin.addListener(() => applyRules());

// --- USB CDC (the REPL) and UARTs ---
const cdc = new USBCDC(mcu.usbCtrl);
const usbIn = [];
cdc.onDeviceConnected = () => {
  out({ ev: 'usb_connected', ms: emuMs() });
  usbIn.push(13, 10); // a terminal opening the port: the REPL shows its prompt
};
cdc.onSerialData = (value) => out({ ev: 'usb', data: b64(value) });
function pumpUsb() {
  while (usbIn.length && cdc.txFIFO.itemCount < cdc.txFIFO.size) cdc.sendSerialByte(usbIn.shift());
}
const uartOut = [[], []];
mcu.uart.forEach((u, n) => { u.onByte = (b) => uartOut[n].push(b); });
function flushUart() {
  for (let n = 0; n < 2; n++) {
    if (uartOut[n].length) { out({ ev: 'uart', n, data: b64(uartOut[n]) }); uartOut[n] = []; }
  }
}

// --- state for queries ---
const emuMs = () => +(sim.clock.nanos / 1e6).toFixed(3);
function pwmOf(pin) {
  const ch = mcu.pwm.channels[(pin >> 1) & 7];
  const cc = (pin & 1) ? ch.cc >>> 16 : ch.cc & 0xffff;
  const top = ch.top + 1;
  const div = (ch.div >> 4) + (ch.div & 15) / 16 || 1;
  return { duty: cc / top, freq: CLOCK_HZ / div / top, enabled: !!(ch.csr & 1) };
}
function state() {
  const gpio = mcu.gpio.slice(0, 30).map((p) => (p.outputEnable ? (p.outputValue ? 1 : 0) : null));
  return { emu_ms: emuMs(), gpio, flash: flashStats };
}

// --- commands from the harness ---
let lineBuf = '';
process.stdin.on('data', (chunk) => {
  lineBuf += chunk.toString();
  let i;
  while ((i = lineBuf.indexOf('\n')) >= 0) {
    const line = lineBuf.slice(0, i); lineBuf = lineBuf.slice(i + 1);
    if (line.trim()) command(JSON.parse(line));
  }
});
process.stdin.on('end', () => process.exit(0));
function command(c) {
  switch (c.cmd) {
    case 'usb': for (const b of Buffer.from(c.data, 'base64')) usbIn.push(b); break;
    case 'uart': for (const b of Buffer.from(c.data, 'base64')) mcu.uart[c.n].feedByte(b); break;
    case 'gpio': mcu.gpio[c.pin].setInputValue(!!c.value); break;
    case 'adc':
      if (c.mode === 'const') { adcSrc[c.ch] = null; mcu.adc.channelValues[c.ch] = c.value; }
      else adcSrc[c.ch] = c;
      break;
    case 'rule': rules.push(c); applyRules(); break;
    case 'query': out({ ev: 'state', id: c.id, ...state(), pwm: (c.pwm || []).map(pwmOf) }); break;
    case 'exit': process.exit(0);
    default: out({ ev: 'log', msg: 'unknown command ' + c.cmd });
  }
}

// --- run: the simulator's loop, with the host's USB bytes fed in ---
const cycleNanos = 1e9 / CLOCK_HZ;
function run() {
  pumpUsb();
  for (let i = 0; i < 200000; i++) {
    if (mcu.core.waiting) {
      const n = sim.clock.nanosToNextAlarm;
      sim.clock.tick(n);
      i += n / cycleNanos;
    } else {
      sim.clock.tick(mcu.core.executeInstruction() * cycleNanos);
    }
    if ((i & 1023) === 0) pumpUsb();
  }
  flushUart();
  setImmediate(run);
}
mcu.core.PC = FLASH_BASE;
out({ ev: 'started' });
run();
