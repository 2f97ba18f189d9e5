// Runs on the audio rendering thread: microphone samples at the AudioContext's rate (the global `sampleRate`)
// -> mono 16 kHz 16-bit PCM in frames of FRAME_MS, posted to the page as transferable ArrayBuffers.
// Doing it here rather than on the main thread means a busy page never drops audio.

const FRAME_MS = 100;

// One RBJ-cookbook low-pass biquad (transposed direct form II keeps the state small and stable).
class LowPass {
  constructor(cutoffHz, q, rateHz) {
    const w = (2 * Math.PI * cutoffHz) / rateHz;
    const alpha = Math.sin(w) / (2 * q);
    const cos = Math.cos(w);
    const a0 = 1 + alpha;
    this.b0 = (1 - cos) / 2 / a0;
    this.b1 = (1 - cos) / a0;
    this.b2 = this.b0;
    this.a1 = (-2 * cos) / a0;
    this.a2 = (1 - alpha) / a0;
    this.z1 = 0;
    this.z2 = 0;
  }

  step(x) {
    const y = this.b0 * x + this.z1;
    this.z1 = this.b1 * x - this.a1 * y + this.z2;
    this.z2 = this.b2 * x - this.a2 * y;
    return y;
  }
}

// 8th-order Butterworth as four biquads: flat to ~5.5 kHz, about 30 dB down at 8 kHz and 60 dB at 10 kHz, so
// what folds back below the 16 kHz Nyquist frequency is negligible for speech.
const BUTTERWORTH_8_Q = [0.5098, 0.6013, 0.9, 2.5629];

// Anti-alias low-pass, then linear interpolation at the output rate. The fractional read position and the
// last input sample carry over between 128-sample render blocks, so block borders leave no clicks.
class Resampler {
  constructor(inRate, outRate) {
    this.step = inRate / outRate; // input samples per output sample
    const cutoff = 0.4 * outRate;
    this.filters = inRate > outRate ? BUTTERWORTH_8_Q.map((q) => new LowPass(cutoff, q, inRate)) : [];
    this.position = 0; // where the next output sample lies, relative to the current block's first sample
    this.previous = 0; // the last (filtered) input sample of the previous block, i.e. index -1
  }

  filter(input) {
    if (this.filters.length === 0) return input;
    const out = new Float32Array(input.length);
    for (let i = 0; i < input.length; i++) {
      let x = input[i];
      for (const f of this.filters) x = f.step(x);
      out[i] = x;
    }
    return out;
  }

  process(input) {
    const x = this.filter(input);
    const n = x.length;
    const out = [];
    let t = this.position;
    while (t <= n - 1) {
      const i = Math.floor(t);
      const frac = t - i;
      const a = i < 0 ? this.previous : x[i];
      const b = i + 1 < n ? x[i + 1] : a; // i + 1 == n only when frac == 0
      out.push(a + (b - a) * frac);
      t += this.step;
    }
    this.position = t - n;
    if (n > 0) this.previous = x[n - 1];
    return out;
  }
}

// float [-1, 1) -> int16, rounding the same way the server's tests encode reference PCM.
function toInt16(sample) {
  const clipped = Math.max(-1, Math.min(32767 / 32768, sample));
  return Math.round(clipped * 32768);
}

class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const targetRate = (options.processorOptions && options.processorOptions.targetRate) || 16000;
    this.resampler = new Resampler(sampleRate, targetRate);
    this.frame = new Int16Array(Math.round((targetRate * FRAME_MS) / 1000));
    this.filled = 0;
    this.running = true;
    this.port.onmessage = (event) => this.onCommand(event.data);
  }

  onCommand(command) {
    if (command === "flush" || command === "stop") {
      this.post(this.filled);
      this.port.postMessage({ type: "flushed" });
      this.running = command !== "stop";
    }
  }

  post(count) {
    if (count === 0) return;
    const buffer = this.frame.slice(0, count).buffer;
    this.port.postMessage({ type: "audio", buffer }, [buffer]);
    this.filled = 0;
  }

  mono(channels) {
    if (channels.length === 1) return channels[0];
    const mixed = new Float32Array(channels[0].length);
    for (const channel of channels) for (let i = 0; i < channel.length; i++) mixed[i] += channel[i] / channels.length;
    return mixed;
  }

  process(inputs) {
    const channels = inputs[0];
    if (this.running && channels && channels.length > 0) {
      for (const sample of this.resampler.process(this.mono(channels))) {
        this.frame[this.filled++] = toInt16(sample);
        if (this.filled === this.frame.length) this.post(this.filled);
      }
    }
    return this.running;
  }
}

registerProcessor("pcm-capture", PcmCapture);
